import CCUDA

// MARK: - cuBLAS table

/// cuBLAS and cuBLASLt entry points (handles, version, sgemm and gemmEx for the ceiling measurement),
/// resolved from libcublas.so.13/.12 and libcublasLt.so.13/.12.
public struct CUBLASAPI: @unchecked Sendable {
  let cublasCreate: ccuda_cublasCreate_fn
  let cublasDestroy: ccuda_cublasDestroy_fn
  let cublasGetVersion: ccuda_cublasGetVersion_fn
  let cublasGetStatusString: ccuda_cublasGetStatusString_fn
  let cublasSetStream: ccuda_cublasSetStream_fn
  let cublasSetMathMode: ccuda_cublasSetMathMode_fn
  let cublasSgemm: ccuda_cublasSgemm_fn
  let cublasGemmEx: ccuda_cublasGemmEx_fn
  let cublasLtCreate: ccuda_cublasLtCreate_fn
  let cublasLtDestroy: ccuda_cublasLtDestroy_fn
  let cublasLtGetVersion: ccuda_cublasLtGetVersion_fn

  /// The libraries the table came from (nil for a recorded table in tests).
  public let library: SharedLibrary?
  public let ltLibrary: SharedLibrary?

  init(_ s: some SymbolSource, lt: some SymbolSource, library: SharedLibrary?, ltLibrary: SharedLibrary?) throws {
    self.library = library
    self.ltLibrary = ltLibrary
    cublasCreate = try s.load("cublasCreate", symbols: ["cublasCreate_v2"])
    cublasDestroy = try s.load("cublasDestroy", symbols: ["cublasDestroy_v2"])
    cublasGetVersion = try s.load("cublasGetVersion", symbols: ["cublasGetVersion_v2"])
    cublasGetStatusString = try s.load("cublasGetStatusString")
    cublasSetStream = try s.load("cublasSetStream", symbols: ["cublasSetStream_v2"])
    cublasSetMathMode = try s.load("cublasSetMathMode")
    cublasSgemm = try s.load("cublasSgemm", symbols: ["cublasSgemm_v2"])
    cublasGemmEx = try s.load("cublasGemmEx")
    cublasLtCreate = try lt.load("cublasLtCreate")
    cublasLtDestroy = try lt.load("cublasLtDestroy")
    cublasLtGetVersion = try lt.load("cublasLtGetVersion")
  }

  /// The table from the cuBLAS and cuBLASLt found by `loader`.
  public static func load(_ loader: CUDALoader) throws -> CUBLASAPI {
    let lt = try loader.library(.cublasLt)
    let lib = try loader.library(.cublas)
    return try CUBLASAPI(lib, lt: lt, library: lib, ltLibrary: lt)
  }

  /// cuBLASLt's version number, e.g. 130001 (no handle or GPU needed).
  public func ltVersion() -> Int { Int(cublasLtGetVersion()) }

  /// Throws an error naming `call` and cuBLAS's status.
  func check(_ status: ccuda_cublasStatus, _ call: @autoclosure () -> String) throws {
    guard status != CCUDA_CUBLAS_STATUS_SUCCESS else { return }
    let detail = cublasGetStatusString(status).map { String(cString: $0) }
    throw CUDAError.call(call(), status: status, name: CUDAStatus.cublas[status] ?? "cublasStatus_t", detail: detail)
  }
}
