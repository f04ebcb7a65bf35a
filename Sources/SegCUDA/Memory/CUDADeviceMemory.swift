import CCUDA
import Foundation

// MARK: - The driver's memory calls

/// Device and pinned host memory of one context, and fences on its stream, through the driver
/// API: what `CachingAllocator` and `PinnedStagingPool` run on with a GPU. It holds the context's
/// handles, not the context, so that the context can own the allocator without a cycle; the
/// context outlives both.
final class CUDADeviceMemory: RawDeviceMemory, PinnedHostMemory, @unchecked Sendable {
  let api: DriverAPI
  let context: ccuda_CUcontext
  let stream: ccuda_CUstream
  let description: String

  init(api: DriverAPI, context: ccuda_CUcontext, stream: ccuda_CUstream, description: String) {
    self.api = api
    self.context = context
    self.stream = stream
    self.description = description
  }

  /// Runs `body` with the context current on the calling thread.
  private func current<R>(_ body: () throws -> R) throws -> R {
    try CurrentContext.make(context, api: api)
    return try body()
  }

  // MARK: RawDeviceMemory

  func allocate(_ bytes: Int) throws -> UInt64? {
    try current {
      var p: ccuda_CUdeviceptr = 0
      let status = api.cuMemAlloc(&p, bytes)
      if status == CCUDA_ERROR_OUT_OF_MEMORY { return nil }
      try api.check(status, "cuMemAlloc(\(bytes) bytes)")
      return p
    }
  }

  func free(_ pointer: UInt64) throws {
    try current { try api.check(api.cuMemFree(pointer), "cuMemFree") }
  }

  func memoryInfo() throws -> (free: Int, total: Int) {
    try current {
      var free = 0, total = 0
      try api.check(api.cuMemGetInfo(&free, &total), "cuMemGetInfo")
      return (free, total)
    }
  }

  func synchronize() throws {
    try current { try api.check(api.cuStreamSynchronize(stream), "cuStreamSynchronize") }
  }

  // MARK: PinnedHostMemory

  func allocateHost(_ bytes: Int) throws -> UnsafeMutableRawPointer {
    try current {
      var p: UnsafeMutableRawPointer? = nil
      try api.check(api.cuMemHostAlloc(&p, bytes, 0), "cuMemHostAlloc(\(bytes) bytes)")
      guard let p else { throw CUDAError(.callFailed, "cuMemHostAlloc(\(bytes) bytes) returned no buffer") }
      return p
    }
  }

  func freeHost(_ pointer: UnsafeMutableRawPointer) {
    _ = try? current { _ = api.cuMemFreeHost(pointer) }
  }

  func createFence() throws -> UnsafeMutableRawPointer {
    try current {
      var e: ccuda_CUevent? = nil
      try api.check(api.cuEventCreate(&e, UInt32(CCUDA_EVENT_DISABLE_TIMING)), "cuEventCreate")
      guard let e else { throw CUDAError(.callFailed, "cuEventCreate returned no event") }
      return e
    }
  }

  func destroyFence(_ fence: UnsafeMutableRawPointer) {
    _ = try? current { _ = api.cuEventDestroy(fence) }
  }

  func record(_ fence: UnsafeMutableRawPointer) throws {
    try current { try api.check(api.cuEventRecord(fence, stream), "cuEventRecord") }
  }

  func isComplete(_ fence: UnsafeMutableRawPointer) throws -> Bool {
    try current {
      let status = api.cuEventQuery(fence)
      if status == CCUDA_ERROR_NOT_READY { return false }
      try api.check(status, "cuEventQuery")
      return true
    }
  }

  func wait(_ fence: UnsafeMutableRawPointer) throws {
    try current { try api.check(api.cuEventSynchronize(fence), "cuEventSynchronize") }
  }
}
