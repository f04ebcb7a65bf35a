import CCUDA
import Foundation
import SegCore

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - CUPTI itself

/// The real `ActivityControl`: CUPTI's activity API, one recording per process (CUPTI's buffers
/// and callbacks are process-wide).
final class CUPTIControl: ActivityControl, @unchecked Sendable {
  let api: CUPTIAPI
  let version: Int

  /// Kernels, copies and fills with their device times; the driver's and the runtime's API calls
  /// (cuDNN and cuBLAS launch through the runtime), without which CUPTI writes no external
  /// correlation records; and those records.
  static let kinds: [(Int32, String)] = [
    (CCUDA_CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, "CONCURRENT_KERNEL"), (CCUDA_CUPTI_ACTIVITY_KIND_MEMCPY, "MEMCPY"),
    (CCUDA_CUPTI_ACTIVITY_KIND_MEMSET, "MEMSET"), (CCUDA_CUPTI_ACTIVITY_KIND_DRIVER, "DRIVER"),
    (CCUDA_CUPTI_ACTIVITY_KIND_RUNTIME, "RUNTIME"), (CCUDA_CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION, "EXTERNAL_CORRELATION"),
  ]
  /// The size of each buffer handed to CUPTI (about 33,000 kernel records).
  static let bufferBytes = 8 << 20

  init(api: CUPTIAPI) throws {
    self.api = api
    version = try api.version()
  }

  var source: String { "CUPTI \(version) activity records (\(api.library?.path ?? "libcupti"))" }
  var walk: ActivityBufferWalk { .cupti(api) }

  func enable(completed: @escaping @Sendable (UnsafeMutablePointer<UInt8>, Int) -> Void) throws {
    try CUPTIBuffers.lock.withLock {
      guard CUPTIBuffers.completed == nil else {
        throw CUDAError(.unsupported, "CUPTI is already recording another profile in this process")
      }
      if !CUPTIBuffers.registered {
        try api.check(api.cuptiActivityRegisterCallbacks(cuptiBufferRequested, cuptiBufferCompleted), "cuptiActivityRegisterCallbacks")
        CUPTIBuffers.registered = true
      }
      CUPTIBuffers.completed = completed
    }
    var enabled: [Int32] = []
    do {
      for (kind, name) in Self.kinds {
        try api.check(api.cuptiActivityEnable(kind), "cuptiActivityEnable(CUPTI_ACTIVITY_KIND_\(name))")
        enabled.append(kind)
      }
    } catch {
      for kind in enabled { _ = api.cuptiActivityDisable(kind) }
      CUPTIBuffers.lock.withLock { CUPTIBuffers.completed = nil }
      throw error
    }
  }

  func push(_ id: UInt64) { _ = api.cuptiActivityPushExternalCorrelationId(CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, id) }

  func pop() {
    var last: UInt64 = 0
    _ = api.cuptiActivityPopExternalCorrelationId(CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &last)
  }

  func flush() throws {
    try api.check(api.cuptiActivityFlushAll(UInt32(CCUDA_CUPTI_ACTIVITY_FLAG_FLUSH_FORCED)), "cuptiActivityFlushAll")
  }

  func disable() {
    for (kind, _) in Self.kinds { _ = api.cuptiActivityDisable(kind) }
    CUPTIBuffers.lock.withLock { CUPTIBuffers.completed = nil }
    _ = api.cuptiActivityFlushAll(UInt32(CCUDA_CUPTI_ACTIVITY_FLAG_FLUSH_FORCED))
  }
}

// MARK: - Buffers

/// The process's one recording: where completed buffers go (CUPTI's callbacks are C functions and
/// carry no context).
enum CUPTIBuffers {
  static let lock = NSLock()
  nonisolated(unsafe) static var completed: (@Sendable (UnsafeMutablePointer<UInt8>, Int) -> Void)?
  nonisolated(unsafe) static var registered = false
}

/// CUPTI asks for an empty buffer: 8 MiB, 8-byte aligned as its records need.
private let cuptiBufferRequested: ccuda_CUpti_BufferRequested = { buffer, size, maxRecords in
  var memory: UnsafeMutableRawPointer?
  let ok = posix_memalign(&memory, 8, CUPTIControl.bufferBytes) == 0
  buffer?.pointee = ok ? memory?.assumingMemoryBound(to: UInt8.self) : nil
  size?.pointee = ok ? CUPTIControl.bufferBytes : 0
  maxRecords?.pointee = 0
}

/// CUPTI hands a buffer back: its records go to the recording, if one is still on, and the
/// buffer is freed.
private let cuptiBufferCompleted: ccuda_CUpti_BufferCompleted = { _, _, buffer, _, valid in
  guard let buffer else { return }
  defer { free(buffer) }
  if valid > 0, let completed = CUPTIBuffers.lock.withLock({ CUPTIBuffers.completed }) { completed(buffer, valid) }
}
