import CCUDA

// MARK: - NVRTC table

/// The NVRTC entry points, resolved from libnvrtc.so.13 or .12.
public struct NVRTCAPI: @unchecked Sendable {
  let nvrtcGetErrorString: ccuda_nvrtcGetErrorString_fn
  let nvrtcVersion: ccuda_nvrtcVersion_fn
  let nvrtcGetNumSupportedArchs: ccuda_nvrtcGetNumSupportedArchs_fn
  let nvrtcGetSupportedArchs: ccuda_nvrtcGetSupportedArchs_fn
  let nvrtcCreateProgram: ccuda_nvrtcCreateProgram_fn
  let nvrtcDestroyProgram: ccuda_nvrtcDestroyProgram_fn
  let nvrtcCompileProgram: ccuda_nvrtcCompileProgram_fn
  let nvrtcGetProgramLogSize: ccuda_nvrtcGetProgramLogSize_fn
  let nvrtcGetProgramLog: ccuda_nvrtcGetProgramLog_fn
  let nvrtcGetCUBINSize: ccuda_nvrtcGetCUBINSize_fn
  let nvrtcGetCUBIN: ccuda_nvrtcGetCUBIN_fn
  let nvrtcGetPTXSize: ccuda_nvrtcGetPTXSize_fn
  let nvrtcGetPTX: ccuda_nvrtcGetPTX_fn

  /// The library the table came from (nil for a recorded table in tests).
  public let library: SharedLibrary?

  init(_ s: some SymbolSource, library: SharedLibrary?) throws {
    self.library = library
    nvrtcGetErrorString = try s.load("nvrtcGetErrorString")
    nvrtcVersion = try s.load("nvrtcVersion")
    nvrtcGetNumSupportedArchs = try s.load("nvrtcGetNumSupportedArchs")
    nvrtcGetSupportedArchs = try s.load("nvrtcGetSupportedArchs")
    nvrtcCreateProgram = try s.load("nvrtcCreateProgram")
    nvrtcDestroyProgram = try s.load("nvrtcDestroyProgram")
    nvrtcCompileProgram = try s.load("nvrtcCompileProgram")
    nvrtcGetProgramLogSize = try s.load("nvrtcGetProgramLogSize")
    nvrtcGetProgramLog = try s.load("nvrtcGetProgramLog")
    nvrtcGetCUBINSize = try s.load("nvrtcGetCUBINSize")
    nvrtcGetCUBIN = try s.load("nvrtcGetCUBIN")
    nvrtcGetPTXSize = try s.load("nvrtcGetPTXSize")
    nvrtcGetPTX = try s.load("nvrtcGetPTX")
  }

  /// The table from the NVRTC found by `loader`.
  public static func load(_ loader: CUDALoader) throws -> NVRTCAPI {
    let lib = try loader.library(.nvrtc)
    return try NVRTCAPI(lib, library: lib)
  }

  // MARK: - Queries

  /// NVRTC's version, e.g. (13, 0).
  public func version() throws -> (major: Int, minor: Int) {
    var major: Int32 = 0, minor: Int32 = 0
    try check(nvrtcVersion(&major, &minor), "nvrtcVersion")
    return (Int(major), Int(minor))
  }

  /// The GPU architectures this NVRTC compiles for, e.g. [75, 80, 86, 89, 90, ...].
  public func supportedArchitectures() throws -> [Int] {
    var n: Int32 = 0
    try check(nvrtcGetNumSupportedArchs(&n), "nvrtcGetNumSupportedArchs")
    var archs = [Int32](repeating: 0, count: Int(n))
    try check(nvrtcGetSupportedArchs(&archs), "nvrtcGetSupportedArchs")
    return archs.map(Int.init)
  }

  // MARK: - Status checks

  /// Throws an error naming `call` and NVRTC's name for the status.
  func check(_ status: ccuda_nvrtcResult, _ call: @autoclosure () -> String) throws {
    guard status != CCUDA_NVRTC_SUCCESS else { return }
    throw CUDAError.call(call(), status: status, name: statusName(status), detail: nil)
  }

  /// NVRTC's own string for a status ("NVRTC_ERROR_COMPILATION"), or our table's.
  func statusName(_ status: ccuda_nvrtcResult) -> String {
    if let p = nvrtcGetErrorString(status) {
      let s = String(cString: p)
      if !s.isEmpty && !s.contains("unknown") { return s }
    }
    return CUDAStatus.nvrtc[status] ?? "nvrtcResult"
  }
}
