import Foundation

// MARK: - Raw device memory

/// The device's own allocation calls, under the caching allocator: on a GPU `CUDADeviceMemory`
/// (cuMemAlloc / cuMemFree on one context and stream), in tests a fake.
public protocol RawDeviceMemory: AnyObject, Sendable {
  /// For messages, e.g. "NVIDIA H100 80GB HBM3".
  var description: String { get }
  /// A new allocation of exactly `bytes` (> 0), or nil when the device is out of memory; other
  /// failures throw.
  func allocate(_ bytes: Int) throws -> UInt64?
  /// Releases an allocation that no queued work uses any more (the caller has synchronised).
  func free(_ pointer: UInt64) throws
  /// Free and total device memory in bytes.
  func memoryInfo() throws -> (free: Int, total: Int)
  /// Waits for all work queued on the stream that uses these allocations.
  func synchronize() throws
}

// MARK: - Statistics

/// What the caching allocator holds, in bytes of its blocks (sizes rounded up to their class).
public struct DeviceMemoryStatistics: Sendable, Equatable, CustomStringConvertible {
  /// Bytes of blocks handed out and not yet freed (live tensors and workspaces).
  public var inUseBytes = 0
  /// Bytes of freed blocks kept for reuse.
  public var cachedBytes = 0
  /// The most `inUseBytes` has been since the start or the last `resetPeak()`.
  public var peakInUseBytes = 0
  /// The most device memory the allocator has held (in use + cached) since the start or the last
  /// `resetPeak()`: what the process took from the device for tensors.
  public var peakReservedBytes = 0
  /// Requests served, and how many of them reused a cached block.
  public var requests = 0
  public var cacheHits = 0
  /// Calls to the device's own allocate and free.
  public var deviceAllocations = 0
  public var deviceFrees = 0
  /// Times an allocation ran out of memory and the cache was released to retry it.
  public var outOfMemoryRetries = 0

  /// Device memory held: in use + cached.
  public var reservedBytes: Int { inUseBytes + cachedBytes }

  public var description: String {
    "in use \(formatBytes(inUseBytes)) (peak \(formatBytes(peakInUseBytes))), cached \(formatBytes(cachedBytes)), "
      + "peak reserved \(formatBytes(peakReservedBytes)); \(requests) requests, \(cacheHits) from the cache, "
      + "\(deviceAllocations) device allocations"
  }
}

// MARK: - Caching allocator

/// A caching allocator over `RawDeviceMemory`: a freed block is kept and handed out again for the
/// next request of its size class, so that a training step, which allocates the same shapes as the
/// step before, makes no device allocation and no synchronisation after the first step.
///
/// Why reuse needs no synchronisation: all work of the context is queued on one stream, in order.
/// A block is freed (by a tensor's deinit) only after every kernel that reads or writes it was
/// queued, and it is handed out again only to work queued later on the same stream, which the
/// device starts after the earlier work has finished. So the new owner never overlaps the old
/// one's accesses, though the host has not waited for either. The host itself touches device
/// memory only through copies queued on that stream (downloads wait for the stream). What does
/// need a synchronisation is giving memory back to the device (`emptyCache`, the out-of-memory
/// retry): work still queued may use a cached block, so the stream is drained first.
///
/// Size classes: requests up to 1 MiB round up to a multiple of 512 bytes (cuMemAlloc's own
/// alignment is 256 bytes; 512 keeps the number of small classes at 2,048 and the waste per block
/// under 512 bytes); larger requests round up to a multiple of 2 MiB (the driver's large-page
/// granularity, so the rounding costs no extra device memory and nearby sizes share a class). A
/// block is reused only for its own class, so a cached block is never more than one class step
/// larger than what asked for it. Each block is one device allocation (no splitting): simple, and
/// a U-Net's shapes repeat exactly from step to step.
///
/// Thread-safe: one lock around the tables; device calls for a miss are made under it too.
public final class CachingAllocator: @unchecked Sendable {
  /// Requests up to this many bytes are "small".
  public static let smallLimit = 1 << 20
  /// The class step of small requests.
  public static let smallStep = 512
  /// The class step of large requests.
  public static let largeStep = 2 << 20

  public let raw: any RawDeviceMemory
  private let lock = NSLock()
  /// Freed blocks by class size.
  private var cache: [Int: [UInt64]] = [:]
  /// Blocks handed out, with their class size.
  private var live: [UInt64: Int] = [:]
  private var stats = DeviceMemoryStatistics()

  public init(raw: any RawDeviceMemory) {
    self.raw = raw
  }

  /// The class (bytes actually reserved) of a request of `bytes`; at least one small step.
  public static func sizeClass(_ bytes: Int) -> Int {
    let n = max(bytes, 1)
    let step = n <= smallLimit ? smallStep : largeStep
    return (n + step - 1) / step * step
  }

  /// A block of at least `bytes` bytes, as a device address: a cached block of the class if there
  /// is one, else a new device allocation. Out of memory, the cache is released (after a stream
  /// synchronisation) and the allocation tried once more; then the error says how much was asked,
  /// what is free and in use, and to use a smaller batch.
  public func allocate(_ bytes: Int) throws -> UInt64 {
    let size = Self.sizeClass(bytes)
    return try lock.withLock {
      stats.requests += 1
      if var blocks = cache[size], let p = blocks.popLast() {
        cache[size] = blocks.isEmpty ? nil : blocks
        stats.cachedBytes -= size
        stats.cacheHits += 1
        handOut(p, size)
        return p
      }
      if let p = try raw.allocate(size) {
        stats.deviceAllocations += 1
        handOut(p, size)
        return p
      }
      stats.outOfMemoryRetries += 1
      let released = try releaseCache()
      if let p = try raw.allocate(size) {
        stats.deviceAllocations += 1
        handOut(p, size)
        return p
      }
      throw outOfMemory(requested: bytes, size: size, released: released)
    }
  }

  /// Returns a block to the cache; the work queued before keeps using it safely (see the type's
  /// comment). Freeing an address this allocator did not hand out is a programming error.
  public func free(_ pointer: UInt64) {
    lock.withLock {
      guard let size = live.removeValue(forKey: pointer) else {
        preconditionFailure("CachingAllocator.free(\(pointer)): not a live block (freed twice, or not ours)")
      }
      stats.inUseBytes -= size
      stats.cachedBytes += size
      cache[size, default: []].append(pointer)
    }
  }

  /// Gives every cached block back to the device, after waiting for the queued work; returns the
  /// bytes released. Blocks in use are untouched.
  @discardableResult
  public func emptyCache() throws -> Int {
    try lock.withLock { try releaseCache() }
  }

  /// The current statistics.
  public var statistics: DeviceMemoryStatistics { lock.withLock { stats } }

  /// Starts the peaks over from what is held now (e.g. to measure the timed steps of a benchmark).
  public func resetPeak() {
    lock.withLock {
      stats.peakInUseBytes = stats.inUseBytes
      stats.peakReservedBytes = stats.reservedBytes
    }
  }

  // MARK: Internals (called with the lock held)

  private func handOut(_ p: UInt64, _ size: Int) {
    live[p] = size
    stats.inUseBytes += size
    stats.peakInUseBytes = max(stats.peakInUseBytes, stats.inUseBytes)
    stats.peakReservedBytes = max(stats.peakReservedBytes, stats.reservedBytes)
  }

  /// Synchronises the stream (queued work may still use a cached block), then frees every cached
  /// block. A block whose free fails stays cached, and the failure is thrown.
  private func releaseCache() throws -> Int {
    guard !cache.isEmpty else { return 0 }
    try raw.synchronize()
    var released = 0
    for (size, blocks) in cache.sorted(by: { $0.key < $1.key }) {
      for (i, p) in blocks.enumerated() {
        do {
          try raw.free(p)
        } catch {
          cache[size] = Array(blocks[i...])
          throw error
        }
        stats.deviceFrees += 1
        stats.cachedBytes -= size
        released += size
      }
      cache[size] = nil
    }
    return released
  }

  private func outOfMemory(requested: Int, size: Int, released: Int) -> CUDAError {
    let info = try? raw.memoryInfo()
    let free = info.map { "\(formatBytes($0.free)) free of \(formatBytes($0.total))" } ?? "free memory unknown"
    let releasedText = released > 0 ? ", after releasing \(formatBytes(released)) of cached blocks" : ""
    return CUDAError(
      .callFailed,
      "out of device memory on \(raw.description): cannot allocate \(formatBytes(requested)) (\(requested) bytes, "
        + "\(size) with rounding); \(free), \(formatBytes(stats.inUseBytes)) (\(stats.inUseBytes) bytes) in use by "
        + "this process's tensors\(releasedText). Use a smaller --batch-size (or a smaller --input-size).")
  }
}

// MARK: - Formatting

/// "1.5 GiB", "512 B": binary units, for memory messages.
func formatBytes(_ n: Int) -> String {
  let units = ["B", "KiB", "MiB", "GiB", "TiB"]
  var v = Double(n)
  var u = 0
  while abs(v) >= 1024 && u < units.count - 1 {
    v /= 1024
    u += 1
  }
  return u == 0 ? "\(n) B" : String(format: "%.1f", v) + " " + units[u]
}
