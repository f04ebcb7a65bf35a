import CCUDA

// MARK: - NCCL table

/// NCCL's entry points (version, unique id, communicator, all-reduce, errors), resolved from
/// libnccl.so.2 (pip's nvidia-nccl-cu13). Nothing here needs a GPU until a communicator is made.
public struct NCCLAPI: @unchecked Sendable {
  let ncclGetVersion: ccuda_ncclGetVersion_fn
  let ncclGetUniqueId: ccuda_ncclGetUniqueId_fn
  let ncclCommInitRank: ccuda_ncclCommInitRank_fn
  let ncclCommDestroy: ccuda_ncclCommDestroy_fn
  let ncclCommAbort: ccuda_ncclCommAbort_fn
  let ncclCommGetAsyncError: ccuda_ncclCommGetAsyncError_fn
  let ncclGetErrorString: ccuda_ncclGetErrorString_fn
  let ncclAllReduce: ccuda_ncclAllReduce_fn

  /// The library the table came from (nil for a recorded table in tests).
  public let library: SharedLibrary?

  init(_ s: some SymbolSource, library: SharedLibrary?) throws {
    self.library = library
    ncclGetVersion = try s.load("ncclGetVersion")
    ncclGetUniqueId = try s.load("ncclGetUniqueId")
    ncclCommInitRank = try s.load("ncclCommInitRank")
    ncclCommDestroy = try s.load("ncclCommDestroy")
    ncclCommAbort = try s.load("ncclCommAbort")
    ncclCommGetAsyncError = try s.load("ncclCommGetAsyncError")
    ncclGetErrorString = try s.load("ncclGetErrorString")
    ncclAllReduce = try s.load("ncclAllReduce")
  }

  /// The table from the NCCL found by `loader`.
  public static func load(_ loader: CUDALoader) throws -> NCCLAPI {
    let lib = try loader.library(.nccl)
    return try NCCLAPI(lib, library: lib)
  }

  /// NCCL's version code, e.g. 23203 for 2.32.3 (no GPU needed).
  public func version() throws -> Int {
    var v: Int32 = 0
    try check(ncclGetVersion(&v), "ncclGetVersion")
    return Int(v)
  }

  /// A new unique id (what rank 0 makes and sends to the others), as its 128 bytes.
  func uniqueID() throws -> [UInt8] {
    var id = ccuda_ncclUniqueId()
    try check(ncclGetUniqueId(&id), "ncclGetUniqueId")
    return withUnsafeBytes(of: &id) { Array($0) }
  }

  /// Throws an error naming `call` and NCCL's result.
  func check(_ result: ccuda_ncclResult, _ call: @autoclosure () -> String) throws {
    guard result != CCUDA_NCCL_SUCCESS else { return }
    let detail = ncclGetErrorString(result).map { String(cString: $0) }
    throw CUDAError.call(call(), status: result, name: CUDAStatus.nccl[result] ?? "ncclResult_t", detail: detail)
  }
}
