import Foundation

// MARK: - Pinned host memory

/// Page-locked host memory and stream fences: on a GPU `CUDADeviceMemory` (cuMemHostAlloc and
/// CUDA events on the context's stream), in tests a fake.
public protocol PinnedHostMemory: AnyObject, Sendable {
  /// A new page-locked host buffer of `bytes` bytes.
  func allocateHost(_ bytes: Int) throws -> UnsafeMutableRawPointer
  /// Frees a page-locked buffer that no queued copy uses any more.
  func freeHost(_ pointer: UnsafeMutableRawPointer)
  /// A new fence (a CUDA event without timing).
  func createFence() throws -> UnsafeMutableRawPointer
  func destroyFence(_ fence: UnsafeMutableRawPointer)
  /// Marks the fence as reached once the work queued so far on the stream is done.
  func record(_ fence: UnsafeMutableRawPointer) throws
  /// Whether the work before the fence's last record is done (true for a fence never recorded).
  func isComplete(_ fence: UnsafeMutableRawPointer) throws -> Bool
  /// Waits until the work before the fence's last record is done.
  func wait(_ fence: UnsafeMutableRawPointer) throws
  /// Waits for all work queued on the stream.
  func synchronize() throws
}

// MARK: - Staging pool

/// Page-locked buffers reused for host<->device copies. A copy from pageable memory makes the
/// driver stage it through its own pinned buffer and return only when the copy has been done; a
/// copy from a pinned buffer is a DMA the host does not wait for. So an upload copies the host
/// values into a staging buffer (a memcpy), queues the copy to the device and returns; the buffer
/// goes back to the pool with a fence recorded after that copy, and is handed out again only once
/// the fence is reached, so a copy never reads a buffer that a later upload is refilling.
///
/// Buffers are powers of two from 64 KiB to `chunkBytes`; a larger copy goes in chunks. The pool
/// holds at most `limitBytes` of pinned memory (page-locked memory is taken from the whole
/// machine): past it, idle buffers are freed, then the oldest copy is waited for.
///
/// Thread-safe: one lock; a waiting `acquire` holds it (other copies wait their turn).
public final class PinnedStagingPool: @unchecked Sendable {
  /// One staging buffer, owned by one copy between `acquire` and `release`.
  public struct Buffer {
    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int
    let fence: UnsafeMutableRawPointer
  }

  /// The smallest buffer.
  public static let minimumBytes = 64 << 10
  public let host: any PinnedHostMemory
  /// The largest buffer, and so the largest piece of a copy.
  public let chunkBytes: Int
  /// The most pinned memory the pool keeps.
  public let limitBytes: Int
  private let lock = NSLock()
  private var idle: [Buffer] = []
  /// Buffers whose copy may still run, oldest first (their fences are recorded in stream order).
  private var inFlight: [Buffer] = []
  private var held = 0

  /// A pool over `host`; `chunkBytes` is rounded up to a power of two.
  public init(host: any PinnedHostMemory, chunkBytes: Int = 32 << 20, limitBytes: Int = 256 << 20) {
    self.host = host
    self.chunkBytes = Self.bufferSize(chunkBytes, chunk: Int.max)
    self.limitBytes = max(limitBytes, self.chunkBytes)
  }

  /// The size of the buffer for a copy of `bytes` (at most `chunk`).
  static func bufferSize(_ bytes: Int, chunk: Int) -> Int {
    var size = minimumBytes
    while size < bytes && size < chunk { size *= 2 }
    return min(size, max(chunk, minimumBytes))
  }

  /// Bytes of pinned memory held (idle and in flight).
  public var heldBytes: Int { lock.withLock { held } }
  /// Buffers whose copy may still be running.
  public var inFlightCount: Int { lock.withLock { inFlight.count } }

  /// A buffer of at least `bytes` (at most `chunkBytes`) that no queued copy uses.
  public func acquire(_ bytes: Int) throws -> Buffer {
    let size = Self.bufferSize(bytes, chunk: chunkBytes)
    return try lock.withLock {
      while true {
        try reclaim()
        if let i = idle.indices.filter({ idle[$0].capacity >= size }).min(by: { idle[$0].capacity < idle[$1].capacity }) {
          return idle.remove(at: i)
        }
        // Make room under the limit: idle buffers (all too small) go first, then wait for the oldest copy.
        while held + size > limitBytes, let b = idle.popLast() { discard(b) }
        if held + size <= limitBytes { break }
        guard let oldest = inFlight.first else { break }
        try host.wait(oldest.fence)
      }
      let pointer = try host.allocateHost(size)
      let fence: UnsafeMutableRawPointer
      do { fence = try host.createFence() } catch {
        host.freeHost(pointer)
        throw error
      }
      held += size
      return Buffer(pointer: pointer, capacity: size, fence: fence)
    }
  }

  /// Gives a buffer back. `copyQueued`: a copy that reads or writes it was queued on the stream
  /// and may still run, so a fence is recorded after it; false when nothing queued uses it (the
  /// copy was waited for, or never queued).
  public func release(_ buffer: Buffer, copyQueued: Bool) throws {
    try lock.withLock {
      guard copyQueued else {
        idle.append(buffer)
        return
      }
      do {
        try host.record(buffer.fence)
      } catch {
        // Without the fence the copy's end is unknown: wait for the whole stream instead.
        try? host.synchronize()
        idle.append(buffer)
        throw error
      }
      inFlight.append(buffer)
    }
  }

  /// Waits for every copy, then frees every buffer.
  public func releaseAll() throws {
    try lock.withLock {
      if !inFlight.isEmpty { try host.synchronize() }
      for b in idle + inFlight { discard(b) }
      idle = []
      inFlight = []
    }
  }

  // MARK: Internals (called with the lock held)

  /// Moves the buffers whose copy is done to the idle list. Fences are recorded on one stream, so
  /// they are reached in order: the first one not reached ends the scan (and a failed query leaves
  /// every buffer in exactly one list).
  private func reclaim() throws {
    while let b = inFlight.first, try host.isComplete(b.fence) {
      idle.append(inFlight.removeFirst())
    }
  }

  private func discard(_ b: Buffer) {
    host.destroyFence(b.fence)
    host.freeHost(b.pointer)
    held -= b.capacity
  }
}
