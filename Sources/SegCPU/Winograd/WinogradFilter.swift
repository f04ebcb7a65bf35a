import Foundation
import SegCore

// MARK: - Transformed filter

/// A 3x3 filter transformed for F(4x4,3x3): U_e = (G g Gᵀ)_e for e = 0..<36, each a matrix of
/// cPadded x oPadded floats (input channel by output channel, both rounded up to 16, padding zero).
final class WinogradFilter {
  /// Input and output channels of the convolution it computes.
  let c, o: Int
  let cPadded, oPadded: Int
  /// 36 * cPadded * oPadded floats.
  let u: HostBuffer

  /// Transforms `g`, an HWIO filter [3,3,C,O] row-major; with `rotated`, the filter of the
  /// backward-data convolution instead: rotated by 180 degrees with the channel roles swapped, so
  /// that it maps O channels to C.
  init(hwio g: UnsafePointer<Float>, c inC: Int, o inO: Int, rotated: Bool) {
    (c, o) = rotated ? (inO, inC) : (inC, inO)
    cPadded = (c + 15) / 16 * 16
    oPadded = (o + 15) / 16 * 16
    u = HostBuffer(byteCount: 36 * cPadded * oPadded * 4, zeroed: true)
    let out = u.pointer.assumingMemoryBound(to: Float.self)
    // The 3x3 filter of (input k, outputs ob*16 ..< +16) as 9 vectors, padded outputs zero.
    let (c, o, cPadded, oPadded) = (c, o, cPadded, oPadded)
    let blocks = oPadded / 16
    Parallel.forEachTask(c * blocks, cost: 36 * 16 * 4) { task in
      let k = task / blocks, ob = task % blocks
      withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 9 + 18 + 36) { s in
        let g9 = s.baseAddress!, t = g9 + 9, u36 = t + 18
        for tap in 0..<9 {
          var v = SIMD16<Float>()
          let (kh, kw) = (tap / 3, tap % 3)
          for lane in 0..<min(16, o - ob * 16) {
            let j = ob * 16 + lane
            // Forward: g[kh][kw][k][j]. Rotated: the original's [2-kh][2-kw][j][k] (its C = our o).
            v[lane] = rotated ? g[((2 - kh) * 3 + (2 - kw)) * inC * inO + j * inO + k] : g[tap * inC * inO + k * inO + j]
          }
          g9[tap] = v
        }
        WinogradTransforms.filter(g9, t, u36)
        for e in 0..<36 {
          UnsafeMutableRawPointer(out + (e * cPadded + k) * oPadded + ob * 16).storeBytes(of: u36[e], as: SIMD16<Float>.self)
        }
      }
    }
  }
}

// MARK: - Cache

/// Transformed filters kept between calls: inference runs each layer's filter many times. An entry
/// is found by the filter tensor's storage (held weakly: a storage that is gone matches nothing, so
/// a new tensor at a reused address cannot hit) and is used only if the filter's values are still
/// byte for byte those it was made from, so a stale transform is never used, whatever rewrote them.
/// Holds at most `capacity` bytes of transforms, dropping the oldest.
enum WinogradFilterCache {
  private final class Entry {
    weak var source: CPUStorage?
    let rotated: Bool
    let values: HostBuffer
    let filter: WinogradFilter
    init(source: CPUStorage, rotated: Bool, values: HostBuffer, filter: WinogradFilter) {
      (self.source, self.rotated, self.values, self.filter) = (source, rotated, values, filter)
    }
    var bytes: Int { values.byteCount + filter.u.byteCount }
  }

  nonisolated(unsafe) private static var entries: [Entry] = []
  private static let lock = NSLock()
  /// Bytes of transforms and their filters' values kept at most. Small on purpose: a transform
  /// costs about 1% of its convolution, and a training step changes every filter anyway, while
  /// keeping the U-Net's (four times its filters, plus their values) raised the 572x572 inference
  /// step's peak RSS from 532 to 1050 MB; the thin layers' transforms still stay cached.
  static let capacity = 64 << 20

  /// The transform of the HWIO filter in `storage` (f32 [3,3,C,O]), rotated for backward-data when
  /// asked: the cached one when its values are unchanged, else made (and cached).
  static func filter(for storage: CPUStorage, rotated: Bool) throws -> WinogradFilter {
    let shape = storage.type.shape
    let plain = try storage.plainBuffer()
    let bytes = shape.count * 4
    let found: WinogradFilter? = lock.withLock {
      guard let i = entries.firstIndex(where: { $0.source === storage && $0.rotated == rotated }) else { return nil }
      let entry = entries[i]
      if entry.values.byteCount == bytes, memcmp(entry.values.pointer, plain.pointer, bytes) == 0 { return entry.filter }
      entries.remove(at: i)
      return nil
    }
    if let found { return found }
    let made = withExtendedLifetime(plain) {
      WinogradFilter(hwio: plain.pointer.assumingMemoryBound(to: Float.self), c: shape[2], o: shape[3], rotated: rotated)
    }
    let values = HostBuffer(byteCount: bytes)
    values.pointer.copyMemory(from: plain.pointer, byteCount: bytes)
    let entry = Entry(source: storage, rotated: rotated, values: values, filter: made)
    lock.withLock {
      entries.removeAll { $0.source == nil }
      var total = entries.reduce(entry.bytes) { $0 + $1.bytes }
      while total > capacity, !entries.isEmpty { total -= entries.removeFirst().bytes }
      if entry.bytes <= capacity { entries.append(entry) }
    }
    return made
  }

  /// Drops every cached transform (tests, and a program that wants the memory back).
  static func removeAll() { lock.withLock { entries.removeAll() } }
}
