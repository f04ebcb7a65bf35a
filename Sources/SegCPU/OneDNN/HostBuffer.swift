import CHostMemory
import Foundation
import SegCore

// MARK: - Host buffer

/// Host memory owned by the CPU backend, 64-byte aligned (what oneDNN's kernels like).
final class HostBuffer {
  let pointer: UnsafeMutableRawPointer
  let byteCount: Int
  /// The arena this buffer is a region of (kept alive by it), or nil for memory of its own.
  let arena: CPUArena?

  /// Counts the buffers allocated on this task while set (tests count a replay's allocations).
  @TaskLocal static var allocations: AllocationCounter?

  /// Uninitialised memory of `byteCount` bytes (zeroed when asked).
  init(byteCount: Int, zeroed: Bool = false) {
    Self.allocations?.count += 1
    self.byteCount = byteCount
    pointer = HostMemory.shared.allocate(byteCount)
    arena = nil
    if zeroed { memset(pointer, 0, max(byteCount, 1)) }
  }

  /// `byteCount` bytes of `arena` from `offset` (zeroed when asked), which the arena keeps.
  private init(_ arena: CPUArena, offset: Int, byteCount: Int, zeroed: Bool) {
    precondition(offset >= 0 && offset + byteCount <= arena.byteCount, "HostBuffer: region outside its arena")
    self.byteCount = byteCount
    self.arena = arena
    arena.held.add(offset..<offset + byteCount)
    pointer = arena.buffer.pointer + offset
    if zeroed, byteCount > 0 { memset(pointer, 0, byteCount) }
  }

  /// The memory of output `index` of the kernel running now: its region of the caller's arena when
  /// the caller placed it there (`OutputPlacement`) and `byteCount` fits, else a fresh buffer.
  static func output(_ index: Int, byteCount: Int, zeroed: Bool = false) -> HostBuffer {
    if let region = OutputPlacement.take(index, bytes: byteCount), let arena = region.arena as? CPUArena {
      return HostBuffer(arena, offset: region.offset, byteCount: byteCount, zeroed: zeroed)
    }
    return HostBuffer(byteCount: byteCount, zeroed: zeroed)
  }

  /// `byteCount` bytes of scratch for the kernel running now (zeroed when asked): the next piece of
  /// the region its compiled program planned for it (`KernelScratch`) when there is room, else a
  /// fresh buffer. `scratch` is `KernelScratch.current` as the kernel's calling thread read it
  /// (worker threads do not see the caller's task-local values).
  static func scratch(_ byteCount: Int, from scratch: KernelScratch?, zeroed: Bool = false) -> HostBuffer {
    if let region = scratch?.take(byteCount), let arena = region.arena as? CPUArena {
      return HostBuffer(arena, offset: region.offset, byteCount: byteCount, zeroed: zeroed)
    }
    return HostBuffer(byteCount: byteCount, zeroed: zeroed)
  }

  /// Whether it is a region of an arena.
  var isInArena: Bool { arena != nil }

  deinit {
    guard let arena else { return HostMemory.shared.free(pointer, byteCount) }
    let offset = pointer - arena.buffer.pointer
    arena.held.remove(offset..<offset + byteCount)
  }
}

/// The byte ranges of an arena held by buffers now, changed from any thread.
final class HeldRegions: @unchecked Sendable {
  /// How many buffers hold each range.
  private var counts: [Range<Int>: Int] = [:]
  private let lock = NSLock()
  /// Counts a buffer holding `range`.
  func add(_ range: Range<Int>) { lock.withLock { counts[range, default: 0] += 1 } }
  /// Counts one buffer fewer holding `range`.
  func remove(_ range: Range<Int>) {
    lock.withLock {
      let left = (counts[range] ?? 1) - 1
      counts[range] = left > 0 ? left : nil
    }
  }
  /// The ranges held now.
  var ranges: [Range<Int>] { lock.withLock { Array(counts.keys) } }
}

/// A number of allocations (`HostBuffer.allocations`).
final class AllocationCounter: @unchecked Sendable {
  var count = 0
}

// MARK: - Arena

/// The CPU backend's arena (`DeviceArena`): one buffer, 64-byte aligned, whose regions replayed
/// kernels write their outputs into.
final class CPUArena: DeviceArena {
  let buffer: HostBuffer
  var byteCount: Int { buffer.byteCount }
  /// The regions of it held now (`ArenaValueCounting`): buffers are let go on any thread.
  let held = HeldRegions()

  /// An arena of `bytes` bytes.
  init(bytes: Int) { buffer = HostBuffer(byteCount: bytes) }
}

// MARK: - Host memory

/// Every CPU buffer's memory: counts the bytes in use and keeps freed large buffers for reuse.
/// A training step allocates the same sizes every step, and memory fresh from the kernel costs a
/// page fault per 4 KiB on first touch: measured here, a quarter of the time of a 64->64
/// convolution at 570x570 goes to faulting in its 80 MB output.
///
/// Large buffers are mappings of their own. A request is served by a kept buffer of its size, else
/// by a kept buffer up to a quarter larger, taken whole, else by the largest smaller kept buffer
/// grown with mremap (its touched pages move along, so only the new part faults), else by a fresh
/// mapping. A much larger kept buffer is never shrunk for a small request: the pages it would drop
/// were faulted in again by the next large request, every step (measured: 400 MB a 572x572
/// inference step, a fifth of its processor time in the kernel). Kept buffers never raise the
/// peak: whenever the bytes in use plus the bytes kept would pass the most bytes in use seen so
/// far, the oldest kept buffers are unmapped. So the backend's peak is that of its tensors (up to a
/// quarter more for a buffer taken whole), and the process's resident memory follows it. Fresh and
/// grown mappings ask for transparent huge pages, so what still faults does so 2 MiB at a time
/// (measured: an eager 572x572 training step 166k faults -> 41k, inference 1.08-1.10x faster).
final class HostMemory: @unchecked Sendable {
  /// The memory of every HostBuffer, keeping the default limit (`CPUBackendOptions`) until the
  /// backend is configured otherwise (`CPUBackend.configure(_:)`).
  static let shared = HostMemory(keepLimit: CPUBackendOptions().recycledBufferLimit)

  /// Smaller buffers come cheaply from malloc's own free lists.
  static let minimumPooledBytes = 1 << 20
  /// Bytes kept at most (0 keeps nothing).
  private var keepLimit: Int
  /// Freed large buffers, oldest first.
  private var kept: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
  /// The mapped size of each buffer in use that is larger than its request (taken whole).
  private var mappedSizes: [UnsafeMutableRawPointer: Int] = [:]
  private var keptBytes = 0
  private var live = 0
  /// The most bytes in use at once: kept buffers fill only the room below it.
  private var liveHighWater = 0
  private var peak = 0
  private let lock = Lock()

  /// A pool keeping at most `keepLimit` bytes of freed buffers (tests make their own).
  init(keepLimit: Int) { self.keepLimit = keepLimit }

  // MARK: Allocation

  /// A buffer of `byteCount` bytes (64-byte aligned, uninitialised).
  func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer {
    guard byteCount >= Self.minimumPooledBytes else {
      lock.withLock {
        count(byteCount)
        peak = max(peak, live + keptBytes)
      }
      return UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }
    var unmap: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
    let reused: (size: Int, pointer: UnsafeMutableRawPointer)? = lock.withLock {
      let whole = kept.indices.filter { kept[$0].size >= byteCount && kept[$0].size <= byteCount + byteCount / 4 }
        .min { kept[$0].size < kept[$1].size }
      let pick = whole ?? kept.indices.filter { kept[$0].size < byteCount }.max { kept[$0].size < kept[$1].size }
      let taken = pick.map { kept.remove(at: $0) }
      keptBytes -= taken?.size ?? 0
      if let taken, taken.size > byteCount {
        mappedSizes[taken.pointer] = taken.size
        count(taken.size)
      } else {
        count(byteCount)
      }
      while let oldest = kept.first, live + keptBytes > liveHighWater {
        unmap.append(kept.removeFirst())
        keptBytes -= oldest.size
      }
      peak = max(peak, live + keptBytes)
      return taken
    }
    for m in unmap { munmap(m.pointer, m.size) }
    if let (size, p) = reused {
      if size >= byteCount { return p }
      if let moved = unet_remap(p, size, byteCount), moved != MAP_FAILED {
        unet_prefer_huge_pages(moved, byteCount)
        return moved
      }
      munmap(p, size)
    }
    guard let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
      fatalError("the CPU backend could not map \(byteCount) bytes: out of memory (use a smaller --batch-size or tile)")
    }
    unet_prefer_huge_pages(p, byteCount)
    return p
  }

  /// Takes back a buffer from `allocate`: kept for reuse when large and within the limit.
  func free(_ pointer: UnsafeMutableRawPointer, _ byteCount: Int) {
    guard byteCount >= Self.minimumPooledBytes else {
      lock.withLock { live -= byteCount }
      pointer.deallocate()
      return
    }
    let (keep, size): (Bool, Int) = lock.withLock {
      let size = mappedSizes.removeValue(forKey: pointer) ?? byteCount
      live -= size
      guard keptBytes + size <= keepLimit else { return (false, size) }
      kept.append((size, pointer))
      keptBytes += size
      return (true, size)
    }
    if !keep { munmap(pointer, size) }
  }

  /// Counts `bytes` more in use (the lock is held).
  private func count(_ bytes: Int) {
    live += bytes
    liveHighWater = max(liveHighWater, live)
  }

  // MARK: Statistics and limits

  /// Bytes in buffers that are in use now.
  var liveBytes: Int { lock.withLock { live } }

  /// Bytes of freed buffers kept for reuse now.
  var keptBytesNow: Int { lock.withLock { keptBytes } }

  /// The most bytes held at once (in use plus kept) since `resetPeak()`.
  var peakBytes: Int { lock.withLock { peak } }

  /// Starts a new peak from what is held now.
  func resetPeak() { lock.withLock { peak = live + keptBytes } }

  /// Bytes of freed buffers kept at most; lowering it unmaps the excess.
  var keepLimitBytes: Int {
    get { lock.withLock { keepLimit } }
    set {
      let unmap: [(size: Int, pointer: UnsafeMutableRawPointer)] = lock.withLock {
        keepLimit = max(newValue, 0)
        var dropped: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
        while keptBytes > keepLimit, !kept.isEmpty {
          dropped.append(kept.removeFirst())
          keptBytes -= dropped.last!.size
        }
        return dropped
      }
      for m in unmap { munmap(m.pointer, m.size) }
    }
  }
}
