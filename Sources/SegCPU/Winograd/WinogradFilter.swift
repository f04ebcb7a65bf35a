import CWinograd
import Foundation
import SegCore

// MARK: - Transformed filter

/// A 3x3 filter transformed for F(4x4,3x3): U_e = (G g Gᵀ)_e for e = 0..<36, each a matrix of
/// cPadded x oPadded floats (input channel by output channel, both rounded up to 16, padding zero)
/// in the column panels of CWinograd's products (`wino_filter_transform`).
final class WinogradFilter {
  /// Input and output channels of the convolution it computes.
  let c, o: Int
  let cPadded, oPadded: Int
  /// 36 * cPadded * oPadded floats.
  let u: HostBuffer

  /// Transforms `g`, an HWIO filter [3,3,C,O] row-major; with `rotated`, the filter of the
  /// backward-data convolution instead: rotated by 180 degrees with the channel roles swapped, so
  /// that it maps O channels to C. Its memory is the kernel's `scratch` when given (it then lives
  /// no longer than the kernel), else a buffer of its own.
  init(hwio g: UnsafePointer<Float>, c inC: Int, o inO: Int, rotated: Bool, scratch: KernelScratch? = nil) {
    (c, o) = rotated ? (inO, inC) : (inC, inO)
    cPadded = (c + 15) / 16 * 16
    oPadded = (o + 15) / 16 * 16
    u = HostBuffer.scratch(36 * cPadded * oPadded * 4, from: scratch)
    let out = UncheckedSendable(u.pointer.assumingMemoryBound(to: Float.self))
    let (c, o, cPadded, oPadded) = (c, o, cPadded, oPadded)
    let isa = WinogradISA.current.rawValue
    // The rotated filter is first made as an HWIO filter of its own ([3,3,O,C]), so that the
    // transform reads 16 output channels as one contiguous vector in both directions.
    let rotatedBuffer = rotated ? HostBuffer.scratch(9 * inC * inO * 4, from: scratch) : nil
    let rotatedCopy = rotatedBuffer?.pointer.assumingMemoryBound(to: Float.self)
    defer { withExtendedLifetime(rotatedBuffer) {} }
    if let rotatedCopy {
      let (source, target) = (UncheckedSendable(g), UncheckedSendable(rotatedCopy))
      Parallel.forEach(9, grain: max(1, Parallel.defaultGrain / max(inC * inO, 1)), align: 1) { taps in
        wino_filter_rotate(source.value, inC, inO, taps.lowerBound, taps.upperBound, target.value)
      }
    }
    wino_filter_zero_padding(out.value, c, cPadded, oPadded)
    let source = UncheckedSendable(UnsafePointer(rotatedCopy) ?? g)
    Parallel.forEach(c, grain: max(1, Parallel.defaultGrain / max(36 * o, 1)), align: 1) { ks in
      wino_filter_transform(isa, source.value, c, o, ks.lowerBound, ks.upperBound, out.value, cPadded, oPadded)
    }
  }
}

// MARK: - Cache

/// Transformed filters kept between calls: inference runs each layer's filter many times. An entry
/// is found by the filter tensor's storage (held weakly: a storage that is gone matches nothing, so
/// a new tensor at a reused address cannot hit) and its generation (`CPUStorage.generation`, which
/// changes whenever its values may have), so a stale transform is never used, and a look-up costs
/// no pass over the values. A transform is kept only from a filter's second use on: the first
/// leaves a sighting (no bytes), so a training step, which transforms each new filter once per
/// direction, keeps none and frees each right after its convolution (64 MiB less at the 572x572
/// step's peak). A transform made in a compiled program's scratch (`KernelScratch`) is never kept:
/// it lives in the arena no longer than its kernel, and making it again costs no page faults.
/// Holds at most `capacity` bytes of transforms, dropping the oldest.
enum WinogradFilterCache {
  private final class Entry {
    weak var source: CPUStorage?
    let generation: UInt64
    let rotated: Bool
    let isa: WinogradISA
    /// The transform; nil for a sighting (the filter's first use).
    let filter: WinogradFilter?
    init(source: CPUStorage, generation: UInt64, rotated: Bool, isa: WinogradISA, filter: WinogradFilter?) {
      (self.source, self.generation, self.rotated, self.isa, self.filter) = (source, generation, rotated, isa, filter)
    }
    var bytes: Int { filter?.u.byteCount ?? 0 }
  }

  nonisolated(unsafe) private static var entries: [Entry] = []
  private static let lock = NSLock()
  /// Bytes of transforms kept at most. Small on purpose: a transform costs about 1% of its
  /// convolution, and a training step changes every filter anyway, while keeping the U-Net's (four
  /// times its filters) raised the 572x572 inference step's peak RSS from 532 to 1050 MB; the thin
  /// layers' transforms still stay cached.
  static let capacity = 64 << 20

  /// The transform of the HWIO filter in `storage` (f32 [3,3,C,O]), rotated for backward-data when
  /// asked: the cached one when the storage's generation is unchanged, else made (in the kernel's
  /// `scratch` when it has room, else cached when it was sighted before).
  static func filter(for storage: CPUStorage, rotated: Bool, scratch: KernelScratch? = nil) throws -> WinogradFilter {
    let generation = storage.generation
    let isa = WinogradISA.current
    let (found, sighted): (WinogradFilter?, Bool) = lock.withLock {
      let entry = entries.first { $0.source === storage && $0.generation == generation && $0.rotated == rotated && $0.isa == isa }
      return (entry?.filter, entry != nil)
    }
    if let found { return found }
    // The entries of filters that are gone (last step's) go first, so that their memory serves the new transform.
    lock.withLock { entries.removeAll { $0.source == nil || ($0.source === storage && $0.rotated == rotated) } }
    let shape = storage.type.shape
    let plain = try storage.plainBuffer()
    let made = withExtendedLifetime(plain) {
      WinogradFilter(hwio: plain.pointer.assumingMemoryBound(to: Float.self), c: shape[2], o: shape[3], rotated: rotated, scratch: scratch)
    }
    let keep = sighted && !made.u.isInArena
    let entry = Entry(source: storage, generation: generation, rotated: rotated, isa: isa, filter: keep ? made : nil)
    lock.withLock {
      entries.removeAll { $0.source == nil || ($0.source === storage && $0.rotated == rotated) }
      var total = entries.reduce(entry.bytes) { $0 + $1.bytes }
      while total > capacity, !entries.isEmpty { total -= entries.removeFirst().bytes }
      if entry.bytes <= capacity { entries.append(entry) }
    }
    return made
  }

  /// Drops every cached transform (tests, and a program that wants the memory back).
  static func removeAll() { lock.withLock { entries.removeAll() } }

  /// Whether a transform of `storage`'s present values (rotated or not) is kept.
  static func keeps(_ storage: CPUStorage, rotated: Bool) -> Bool {
    lock.withLock { entries.contains { $0.source === storage && $0.generation == storage.generation && $0.rotated == rotated && $0.filter != nil } }
  }
}
