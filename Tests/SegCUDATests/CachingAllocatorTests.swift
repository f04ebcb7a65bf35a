import Foundation
import Testing

@testable import SegCUDA

// MARK: - A fake device

/// Device memory of `capacity` bytes and a stream, recording every call in order; addresses are
/// made up (nothing reads them). Pinned host buffers are real host memory; fences complete when
/// the test says the stream has run (`runStream`) or when waited for.
final class FakeDeviceMemory: RawDeviceMemory, PinnedHostMemory, @unchecked Sendable {
  let capacity: Int
  let description = "fake GPU"
  private let lock = NSLock()
  private var nextAddress: UInt64 = 0x10_0000
  private(set) var live: [UInt64: Int] = [:]
  private(set) var log: [String] = []
  private(set) var hostLive: Set<UnsafeMutableRawPointer> = []
  private var pending: Set<UnsafeMutableRawPointer> = []
  private var fences: Set<UnsafeMutableRawPointer> = []

  init(capacity: Int) { self.capacity = capacity }

  var used: Int { lock.withLock { live.values.reduce(0, +) } }
  func clearLog() { lock.withLock { log = [] } }
  private func note(_ s: String) { log.append(s) }

  func allocate(_ bytes: Int) throws -> UInt64? {
    try lock.withLock {
      guard bytes > 0 else { throw CUDAError(.callFailed, "allocate(0)") }
      guard live.values.reduce(0, +) + bytes <= capacity else {
        note("oom \(bytes)")
        return nil
      }
      let p = nextAddress
      nextAddress += UInt64(bytes)
      live[p] = bytes
      note("alloc \(bytes)")
      return p
    }
  }

  func free(_ pointer: UInt64) throws {
    try lock.withLock {
      guard let n = live.removeValue(forKey: pointer) else { throw CUDAError(.callFailed, "bad free \(pointer)") }
      note("free \(n)")
    }
  }

  func memoryInfo() throws -> (free: Int, total: Int) {
    lock.withLock { (capacity - live.values.reduce(0, +), capacity) }
  }

  func synchronize() throws {
    lock.withLock {
      note("sync")
      pending = []
    }
  }

  /// The stream runs everything queued so far.
  func runStream() { lock.withLock { pending = [] } }

  func allocateHost(_ bytes: Int) throws -> UnsafeMutableRawPointer {
    lock.withLock {
      let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
      hostLive.insert(p)
      note("host alloc \(bytes)")
      return p
    }
  }

  func freeHost(_ pointer: UnsafeMutableRawPointer) {
    lock.withLock {
      precondition(hostLive.remove(pointer) != nil, "freed a host buffer twice")
      pointer.deallocate()
      note("host free")
    }
  }

  func createFence() throws -> UnsafeMutableRawPointer {
    lock.withLock {
      let f = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
      fences.insert(f)
      return f
    }
  }

  func destroyFence(_ fence: UnsafeMutableRawPointer) {
    lock.withLock {
      precondition(fences.remove(fence) != nil, "destroyed a fence twice")
      fence.deallocate()
    }
  }

  func record(_ fence: UnsafeMutableRawPointer) throws { lock.withLock { _ = pending.insert(fence) } }
  func isComplete(_ fence: UnsafeMutableRawPointer) throws -> Bool { lock.withLock { !pending.contains(fence) } }

  /// Fences are recorded in stream order: waiting for one also completes those recorded before.
  func wait(_ fence: UnsafeMutableRawPointer) throws {
    lock.withLock {
      note("wait")
      pending = []
    }
  }

  var liveFences: Int { lock.withLock { fences.count } }
}

// MARK: - Caching allocator

@Suite struct CachingAllocatorTests {
  @Test func sizeClasses() {
    #expect(CachingAllocator.sizeClass(0) == 512)
    #expect(CachingAllocator.sizeClass(1) == 512)
    #expect(CachingAllocator.sizeClass(512) == 512)
    #expect(CachingAllocator.sizeClass(513) == 1024)
    #expect(CachingAllocator.sizeClass(1 << 20) == 1 << 20)
    #expect(CachingAllocator.sizeClass((1 << 20) + 1) == 2 << 20)
    #expect(CachingAllocator.sizeClass(3 << 20) == 4 << 20)
    #expect(CachingAllocator.sizeClass(4 << 20) == 4 << 20)
  }

  /// A freed block is handed out again for its class, with no device call and no synchronisation;
  /// another class gets a new block.
  @Test func reusesFreedBlocksOfTheSameClassWithoutSync() throws {
    let raw = FakeDeviceMemory(capacity: 1 << 30)
    let a = CachingAllocator(raw: raw)
    let p = try a.allocate(1000)
    a.free(p)
    raw.clearLog()
    let q = try a.allocate(600)
    #expect(q == p)
    #expect(raw.log.isEmpty, "a cache hit called the device: \(raw.log)")
    let r = try a.allocate(3000)
    #expect(r != p)
    #expect(raw.log == ["alloc 3072"])
    let s = a.statistics
    #expect(s.requests == 3 && s.cacheHits == 1 && s.deviceAllocations == 2)
    #expect(s.inUseBytes == 1024 + 3072 && s.cachedBytes == 0)
  }

  /// Large requests round to 2 MiB classes and share a block across nearby sizes.
  @Test func largeRequestsShareTheirClass() throws {
    let raw = FakeDeviceMemory(capacity: 1 << 30)
    let a = CachingAllocator(raw: raw)
    let p = try a.allocate(5_000_000)
    #expect(raw.live[p] == 6 << 20)
    a.free(p)
    #expect(try a.allocate(4_500_000) == p)
    #expect(try a.allocate(4_000_000) != p)  // 4 MiB: a class of its own
  }

  /// Everything freed: nothing in use; after emptyCache the device holds nothing either.
  @Test func noLeak() throws {
    let raw = FakeDeviceMemory(capacity: 1 << 30)
    let a = CachingAllocator(raw: raw)
    for round in 0..<3 {
      let blocks = try (1...20).map { try a.allocate($0 * 700 + round) }
      blocks.forEach(a.free)
    }
    #expect(a.statistics.inUseBytes == 0)
    #expect(a.statistics.cachedBytes == raw.used)
    let released = try a.emptyCache()
    #expect(released > 0 && raw.live.isEmpty && a.statistics.cachedBytes == 0)
    #expect(a.statistics.deviceFrees == a.statistics.deviceAllocations)
  }

  /// emptyCache waits for the stream before giving any block back, and leaves blocks in use alone.
  @Test func emptyCacheSynchronisesFirst() throws {
    let raw = FakeDeviceMemory(capacity: 1 << 30)
    let a = CachingAllocator(raw: raw)
    let kept = try a.allocate(512)
    let blocks = try [1024, 2048, 4096].map { try a.allocate($0) }
    blocks.forEach(a.free)
    raw.clearLog()
    #expect(try a.emptyCache() == 1024 + 2048 + 4096)
    #expect(raw.log.first == "sync")
    #expect(Set(raw.log.dropFirst()) == ["free 1024", "free 2048", "free 4096"])
    #expect(raw.live.keys.sorted() == [kept])
    raw.clearLog()
    #expect(try a.emptyCache() == 0)
    #expect(raw.log.isEmpty, "nothing cached: no sync needed")
  }

  @Test func peakInUseAndReserved() throws {
    let raw = FakeDeviceMemory(capacity: 1 << 30)
    let a = CachingAllocator(raw: raw)
    let p = try a.allocate(1024)
    let q = try a.allocate(2048)
    a.free(p)
    let r = try a.allocate(512)
    var s = a.statistics
    #expect(s.inUseBytes == 2048 + 512)
    #expect(s.peakInUseBytes == 1024 + 2048)
    #expect(s.peakReservedBytes == 1024 + 2048 + 512)
    #expect(s.reservedBytes == raw.used)
    a.resetPeak()
    s = a.statistics
    #expect(s.peakInUseBytes == 2048 + 512 && s.peakReservedBytes == raw.used)
    a.free(q)
    a.free(r)
    #expect(a.statistics.peakInUseBytes == 2048 + 512 && a.statistics.inUseBytes == 0)
  }

  /// Out of memory with blocks cached: the stream is synchronised, the cache released, the
  /// allocation retried once and served.
  @Test func outOfMemoryReleasesTheCacheAndRetries() throws {
    let raw = FakeDeviceMemory(capacity: 8 << 20)
    let a = CachingAllocator(raw: raw)
    let cached = try [2 << 20, 2 << 20, 1 << 20].map { try a.allocate($0) }
    cached.forEach(a.free)
    raw.clearLog()
    let p = try a.allocate(6 << 20)
    #expect(raw.log.first == "oom \(6 << 20)")
    #expect(raw.log.dropFirst().first == "sync", "the stream is synchronised before cached blocks are freed: \(raw.log)")
    #expect(raw.log.filter { $0.hasPrefix("free") }.count == 3)
    #expect(raw.log.last == "alloc \(6 << 20)")
    #expect(raw.live.keys.sorted() == [p])
    let s = a.statistics
    #expect(s.outOfMemoryRetries == 1 && s.cachedBytes == 0 && s.inUseBytes == 6 << 20)
  }

  /// Still out of memory after the retry: an error with the bytes asked, free and in use, and the
  /// batch-size hint; the allocator stays usable.
  @Test func outOfMemoryTwiceGivesAClearError() throws {
    let raw = FakeDeviceMemory(capacity: 8 << 20)
    let a = CachingAllocator(raw: raw)
    let held = try a.allocate(5 << 20)  // 6 MiB with rounding
    let small = try a.allocate(1000)
    a.free(small)
    raw.clearLog()
    do {
      _ = try a.allocate(3_000_000)
      Issue.record("allocated past the capacity")
    } catch let e as CUDAError {
      #expect(e.kind == .callFailed)
      #expect(e.message.contains("out of device memory on fake GPU"))
      #expect(e.message.contains("3000000 bytes"), "bytes asked: \(e.message)")
      #expect(e.message.contains("2.0 MiB free of 8.0 MiB"), "bytes free: \(e.message)")
      #expect(e.message.contains("6.0 MiB (6291456 bytes) in use"), "bytes in use: \(e.message)")
      #expect(e.message.contains("--batch-size"))
      #expect(e.message.contains("--input-size"))
    }
    #expect(raw.log == ["oom 4194304", "sync", "free 1024", "oom 4194304"])
    #expect(a.statistics.outOfMemoryRetries == 1)
    // Freed, the 6 MiB block is of another class than 3 MB's; out of memory again, it is released.
    a.free(held)
    let p = try a.allocate(3_000_000)
    #expect(raw.live.keys.sorted() == [p] && raw.live[p] == 4 << 20)
    #expect(a.statistics.outOfMemoryRetries == 2)
  }

  /// Many threads allocating and freeing: the tables stay consistent.
  @Test func threadSafe() throws {
    let raw = FakeDeviceMemory(capacity: 1 << 30)
    let a = CachingAllocator(raw: raw)
    DispatchQueue.concurrentPerform(iterations: 8) { t in
      for i in 0..<200 {
        if let p = try? a.allocate(((i * 7 + t) % 16 + 1) * 500) { a.free(p) }
      }
    }
    let s = a.statistics
    #expect(s.inUseBytes == 0 && s.requests == 1600)
    #expect(s.cachedBytes == raw.used && s.deviceAllocations == raw.live.count)
  }
}

// MARK: - Pinned staging

@Suite struct PinnedStagingTests {
  @Test func bufferSizes() {
    let chunk = 32 << 20
    #expect(PinnedStagingPool.bufferSize(1, chunk: chunk) == 64 << 10)
    #expect(PinnedStagingPool.bufferSize(64 << 10, chunk: chunk) == 64 << 10)
    #expect(PinnedStagingPool.bufferSize((64 << 10) + 1, chunk: chunk) == 128 << 10)
    #expect(PinnedStagingPool.bufferSize(100 << 20, chunk: chunk) == chunk)
    #expect(PinnedStagingPool(host: FakeDeviceMemory(capacity: 0), chunkBytes: 3 << 20).chunkBytes == 4 << 20)
  }

  /// A buffer whose copy may still run is not handed out again; once its fence is reached it is.
  @Test func notReusedUntilTheCopyIsDone() throws {
    let host = FakeDeviceMemory(capacity: 0)
    let pool = PinnedStagingPool(host: host)
    let first = try pool.acquire(100)
    #expect(first.capacity == 64 << 10)
    try pool.release(first, copyQueued: true)
    #expect(pool.inFlightCount == 1)
    let second = try pool.acquire(100)
    #expect(second.pointer != first.pointer, "reused a buffer whose copy may still be running")
    try pool.release(second, copyQueued: true)
    host.runStream()
    let third = try pool.acquire(10)
    #expect(third.pointer == first.pointer || third.pointer == second.pointer)
    #expect(pool.heldBytes == 2 * (64 << 10))
    #expect(!host.log.contains("wait") && !host.log.contains("sync"), "under the limit nothing waits: \(host.log)")
    try pool.release(third, copyQueued: false)
    try pool.releaseAll()
  }

  /// A buffer given back with nothing queued (a download, waited for) is reusable at once; a
  /// larger request takes the smallest idle buffer that fits, or a new one.
  @Test func idleBuffersAreReusedSmallestFirst() throws {
    let host = FakeDeviceMemory(capacity: 0)
    let pool = PinnedStagingPool(host: host)
    let small = try pool.acquire(1000)
    let large = try pool.acquire(200 << 10)
    #expect(large.capacity == 256 << 10)
    try pool.release(small, copyQueued: false)
    try pool.release(large, copyQueued: false)
    #expect(try pool.acquire(10).pointer == small.pointer)
    #expect(try pool.acquire(100 << 10).pointer == large.pointer)
    let fresh = try pool.acquire(100 << 10)
    #expect(fresh.pointer != small.pointer && fresh.pointer != large.pointer)
    try pool.releaseAll()
  }

  /// At the limit of pinned memory, the oldest copy is waited for and its buffer reused; idle
  /// buffers too small are freed to make room.
  @Test func theLimitBoundsPinnedMemory() throws {
    let host = FakeDeviceMemory(capacity: 0)
    let pool = PinnedStagingPool(host: host, chunkBytes: 64 << 10, limitBytes: 128 << 10)
    for _ in 0..<5 {
      let b = try pool.acquire(64 << 10)
      try pool.release(b, copyQueued: true)
      #expect(pool.heldBytes <= 128 << 10)
    }
    #expect(host.log.filter { $0 == "wait" }.count == 2)
    #expect(host.log.filter { $0.hasPrefix("host alloc") }.count == 2)
    try pool.releaseAll()
  }

  /// releaseAll waits for the stream, then frees every buffer and fence.
  @Test func releaseAllSynchronisesThenFrees() throws {
    let host = FakeDeviceMemory(capacity: 0)
    let pool = PinnedStagingPool(host: host)
    for n in [10, 100 << 10, 1 << 20] {
      try pool.release(try pool.acquire(n), copyQueued: true)
    }
    host.clearLog()
    try pool.releaseAll()
    #expect(host.log.first == "sync")
    #expect(host.log.filter { $0 == "host free" }.count == 3)
    #expect(host.hostLive.isEmpty && host.liveFences == 0 && pool.heldBytes == 0)
  }
}

// MARK: - On a real GPU (skipped without one)

@Suite(.enabled(if: GPU.available, GPU.reason))
struct GPUMemoryTests {
  /// The memory path on the device: chunked round trip, uploads in flight, reuse, out of memory.
  @Test func memoryCheckPasses() throws {
    let device = try #require(try GPU.backend.get().device as? GPUKernelDevice)
    let summary = try device.context.checkMemory()
    #expect(summary.contains("OK"))
    #expect(try GPU.backend.get().memoryStatistics != nil)
  }
}
