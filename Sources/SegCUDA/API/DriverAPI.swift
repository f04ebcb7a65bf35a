import CCUDA

// MARK: - Driver API table

/// The CUDA driver entry points we call, resolved from libcuda.so.1. Symbols are the versioned
/// names that cuda.h maps each call to (cuMemAlloc is cuMemAlloc_v2): the unversioned ones are
/// older ABIs with other semantics.
public struct DriverAPI: @unchecked Sendable {
  let cuInit: ccuda_cuInit_fn
  let cuDriverGetVersion: ccuda_cuDriverGetVersion_fn
  let cuGetErrorString: ccuda_cuGetErrorString_fn
  let cuGetErrorName: ccuda_cuGetErrorName_fn
  let cuDeviceGetCount: ccuda_cuDeviceGetCount_fn
  let cuDeviceGet: ccuda_cuDeviceGet_fn
  let cuDeviceGetName: ccuda_cuDeviceGetName_fn
  let cuDeviceGetAttribute: ccuda_cuDeviceGetAttribute_fn
  let cuDeviceTotalMem: ccuda_cuDeviceTotalMem_fn
  let cuDevicePrimaryCtxRetain: ccuda_cuDevicePrimaryCtxRetain_fn
  let cuDevicePrimaryCtxRelease: ccuda_cuDevicePrimaryCtxRelease_fn
  let cuCtxSetCurrent: ccuda_cuCtxSetCurrent_fn
  let cuCtxGetCurrent: ccuda_cuCtxGetCurrent_fn
  let cuCtxPushCurrent: ccuda_cuCtxPushCurrent_fn
  let cuCtxPopCurrent: ccuda_cuCtxPopCurrent_fn
  let cuCtxSynchronize: ccuda_cuCtxSynchronize_fn
  let cuMemAlloc: ccuda_cuMemAlloc_fn
  let cuMemFree: ccuda_cuMemFree_fn
  let cuMemGetInfo: ccuda_cuMemGetInfo_fn
  let cuMemcpyHtoD: ccuda_cuMemcpyHtoD_fn
  let cuMemcpyDtoH: ccuda_cuMemcpyDtoH_fn
  let cuMemcpyHtoDAsync: ccuda_cuMemcpyHtoDAsync_fn
  let cuMemcpyDtoHAsync: ccuda_cuMemcpyDtoHAsync_fn
  let cuMemcpyDtoDAsync: ccuda_cuMemcpyDtoDAsync_fn
  let cuMemsetD8Async: ccuda_cuMemsetD8Async_fn
  let cuStreamCreate: ccuda_cuStreamCreate_fn
  let cuStreamDestroy: ccuda_cuStreamDestroy_fn
  let cuStreamSynchronize: ccuda_cuStreamSynchronize_fn
  let cuEventCreate: ccuda_cuEventCreate_fn
  let cuEventDestroy: ccuda_cuEventDestroy_fn
  let cuEventRecord: ccuda_cuEventRecord_fn
  let cuEventSynchronize: ccuda_cuEventSynchronize_fn
  let cuEventElapsedTime: ccuda_cuEventElapsedTime_fn
  let cuModuleLoadData: ccuda_cuModuleLoadData_fn
  let cuModuleUnload: ccuda_cuModuleUnload_fn
  let cuModuleGetFunction: ccuda_cuModuleGetFunction_fn
  let cuLaunchKernel: ccuda_cuLaunchKernel_fn
  // Caching allocator: pinned staging buffers and their fences.
  let cuMemHostAlloc: ccuda_cuMemHostAlloc_fn
  let cuMemFreeHost: ccuda_cuMemFreeHost_fn
  let cuEventQuery: ccuda_cuEventQuery_fn
  let cuStreamWaitEvent: ccuda_cuStreamWaitEvent_fn
  // Graphs: stream capture, instantiation, launch (`CUDAGraph`).
  let cuStreamBeginCapture: ccuda_cuStreamBeginCapture_fn
  let cuStreamEndCapture: ccuda_cuStreamEndCapture_fn
  let cuStreamIsCapturing: ccuda_cuStreamIsCapturing_fn
  let cuGraphInstantiateWithFlags: ccuda_cuGraphInstantiateWithFlags_fn
  let cuGraphLaunch: ccuda_cuGraphLaunch_fn
  let cuGraphExecDestroy: ccuda_cuGraphExecDestroy_fn
  let cuGraphDestroy: ccuda_cuGraphDestroy_fn

  /// The library the table came from (nil for a recorded table in tests).
  public let library: SharedLibrary?

  init(_ s: some SymbolSource, library: SharedLibrary?) throws {
    self.library = library
    cuInit = try s.load("cuInit")
    cuDriverGetVersion = try s.load("cuDriverGetVersion")
    cuGetErrorString = try s.load("cuGetErrorString")
    cuGetErrorName = try s.load("cuGetErrorName")
    cuDeviceGetCount = try s.load("cuDeviceGetCount")
    cuDeviceGet = try s.load("cuDeviceGet")
    cuDeviceGetName = try s.load("cuDeviceGetName")
    cuDeviceGetAttribute = try s.load("cuDeviceGetAttribute")
    cuDeviceTotalMem = try s.load("cuDeviceTotalMem", symbols: ["cuDeviceTotalMem_v2"])
    cuDevicePrimaryCtxRetain = try s.load("cuDevicePrimaryCtxRetain")
    cuDevicePrimaryCtxRelease = try s.load("cuDevicePrimaryCtxRelease", symbols: ["cuDevicePrimaryCtxRelease_v2"])
    cuCtxSetCurrent = try s.load("cuCtxSetCurrent")
    cuCtxGetCurrent = try s.load("cuCtxGetCurrent")
    cuCtxPushCurrent = try s.load("cuCtxPushCurrent", symbols: ["cuCtxPushCurrent_v2"])
    cuCtxPopCurrent = try s.load("cuCtxPopCurrent", symbols: ["cuCtxPopCurrent_v2"])
    cuCtxSynchronize = try s.load("cuCtxSynchronize")
    cuMemAlloc = try s.load("cuMemAlloc", symbols: ["cuMemAlloc_v2"])
    cuMemFree = try s.load("cuMemFree", symbols: ["cuMemFree_v2"])
    cuMemGetInfo = try s.load("cuMemGetInfo", symbols: ["cuMemGetInfo_v2"])
    cuMemcpyHtoD = try s.load("cuMemcpyHtoD", symbols: ["cuMemcpyHtoD_v2"])
    cuMemcpyDtoH = try s.load("cuMemcpyDtoH", symbols: ["cuMemcpyDtoH_v2"])
    cuMemcpyHtoDAsync = try s.load("cuMemcpyHtoDAsync", symbols: ["cuMemcpyHtoDAsync_v2"])
    cuMemcpyDtoHAsync = try s.load("cuMemcpyDtoHAsync", symbols: ["cuMemcpyDtoHAsync_v2"])
    cuMemcpyDtoDAsync = try s.load("cuMemcpyDtoDAsync", symbols: ["cuMemcpyDtoDAsync_v2"])
    cuMemsetD8Async = try s.load("cuMemsetD8Async")
    cuStreamCreate = try s.load("cuStreamCreate")
    cuStreamDestroy = try s.load("cuStreamDestroy", symbols: ["cuStreamDestroy_v2"])
    cuStreamSynchronize = try s.load("cuStreamSynchronize")
    cuEventCreate = try s.load("cuEventCreate")
    cuEventDestroy = try s.load("cuEventDestroy", symbols: ["cuEventDestroy_v2"])
    cuEventRecord = try s.load("cuEventRecord")
    cuEventSynchronize = try s.load("cuEventSynchronize")
    // CUDA 12.8 added _v2 (cuda.h 13 maps to it); older drivers have only the original, same signature.
    cuEventElapsedTime = try s.load("cuEventElapsedTime", symbols: ["cuEventElapsedTime_v2", "cuEventElapsedTime"])
    cuModuleLoadData = try s.load("cuModuleLoadData")
    cuModuleUnload = try s.load("cuModuleUnload")
    cuModuleGetFunction = try s.load("cuModuleGetFunction")
    cuLaunchKernel = try s.load("cuLaunchKernel")
    // Caching allocator: pinned staging buffers and their fences.
    cuMemHostAlloc = try s.load("cuMemHostAlloc")
    cuMemFreeHost = try s.load("cuMemFreeHost")
    cuEventQuery = try s.load("cuEventQuery")
    cuStreamWaitEvent = try s.load("cuStreamWaitEvent")
    cuStreamBeginCapture = try s.load("cuStreamBeginCapture", symbols: ["cuStreamBeginCapture_v2"])
    cuStreamEndCapture = try s.load("cuStreamEndCapture")
    cuStreamIsCapturing = try s.load("cuStreamIsCapturing")
    cuGraphInstantiateWithFlags = try s.load("cuGraphInstantiateWithFlags")
    cuGraphLaunch = try s.load("cuGraphLaunch")
    cuGraphExecDestroy = try s.load("cuGraphExecDestroy")
    cuGraphDestroy = try s.load("cuGraphDestroy")
  }

  /// The table from libcuda.so.1 found by `loader`.
  public static func load(_ loader: CUDALoader) throws -> DriverAPI {
    let lib = try loader.library(.driver)
    return try DriverAPI(lib, library: lib)
  }

  // MARK: - Status checks

  /// Throws an error naming `call` and the status (its name and the driver's description).
  func check(_ status: ccuda_CUresult, _ call: @autoclosure () -> String) throws {
    guard status != CCUDA_SUCCESS else { return }
    throw CUDAError.call(call(), status: status, name: statusName(status), detail: statusText(status))
  }

  /// The CUresult's name, from the driver or our table.
  func statusName(_ status: ccuda_CUresult) -> String {
    var p: UnsafePointer<CChar>? = nil
    if cuGetErrorName(status, &p) == CCUDA_SUCCESS, let p { return String(cString: p) }
    return CUDAStatus.driver[status] ?? "CUresult"
  }

  /// The driver's description of a CUresult, if it has one.
  func statusText(_ status: ccuda_CUresult) -> String? {
    var p: UnsafePointer<CChar>? = nil
    if cuGetErrorString(status, &p) == CCUDA_SUCCESS, let p { return String(cString: p) }
    return nil
  }
}
