import CCUDA

// MARK: - CUPTI table

/// CUPTI's activity API (version, results, enabling record kinds, buffers, records, flushing, the
/// external correlation ids that tie device work to our ops), resolved from libcupti.so.13 or .12
/// (pip's nvidia-cuda-cupti). Nothing here needs a GPU until a record kind is enabled.
public struct CUPTIAPI: @unchecked Sendable {
  let cuptiGetVersion: ccuda_cuptiGetVersion_fn
  let cuptiGetResultString: ccuda_cuptiGetResultString_fn
  let cuptiGetTimestamp: ccuda_cuptiGetTimestamp_fn
  let cuptiActivityEnable: ccuda_cuptiActivityEnable_fn
  let cuptiActivityDisable: ccuda_cuptiActivityDisable_fn
  let cuptiActivityRegisterCallbacks: ccuda_cuptiActivityRegisterCallbacks_fn
  let cuptiActivityGetNextRecord: ccuda_cuptiActivityGetNextRecord_fn
  let cuptiActivityFlushAll: ccuda_cuptiActivityFlushAll_fn
  let cuptiActivityPushExternalCorrelationId: ccuda_cuptiActivityPushExternalCorrelationId_fn
  let cuptiActivityPopExternalCorrelationId: ccuda_cuptiActivityPopExternalCorrelationId_fn

  /// The library the table came from (nil for a recorded table in tests).
  public let library: SharedLibrary?

  init(_ s: some SymbolSource, library: SharedLibrary?) throws {
    self.library = library
    cuptiGetVersion = try s.load("cuptiGetVersion")
    cuptiGetResultString = try s.load("cuptiGetResultString")
    cuptiGetTimestamp = try s.load("cuptiGetTimestamp")
    cuptiActivityEnable = try s.load("cuptiActivityEnable")
    cuptiActivityDisable = try s.load("cuptiActivityDisable")
    cuptiActivityRegisterCallbacks = try s.load("cuptiActivityRegisterCallbacks")
    cuptiActivityGetNextRecord = try s.load("cuptiActivityGetNextRecord")
    cuptiActivityFlushAll = try s.load("cuptiActivityFlushAll")
    cuptiActivityPushExternalCorrelationId = try s.load("cuptiActivityPushExternalCorrelationId")
    cuptiActivityPopExternalCorrelationId = try s.load("cuptiActivityPopExternalCorrelationId")
  }

  /// The table from the CUPTI found by `loader`.
  public static func load(_ loader: CUDALoader) throws -> CUPTIAPI {
    let lib = try loader.library(.cupti)
    return try CUPTIAPI(lib, library: lib)
  }

  /// CUPTI's API version, e.g. 130500 for CUDA 13.5's (no GPU needed).
  public func version() throws -> Int {
    var v: UInt32 = 0
    try check(cuptiGetVersion(&v), "cuptiGetVersion")
    return Int(v)
  }

  /// Throws an error naming `call` and CUPTI's result, with CUPTI's own text for it.
  func check(_ result: ccuda_CUptiResult, _ call: @autoclosure () -> String) throws {
    guard result != CCUDA_CUPTI_SUCCESS else { return }
    var text: UnsafePointer<CChar>?
    let detail = cuptiGetResultString(result, &text) == CCUDA_CUPTI_SUCCESS ? text.map { String(cString: $0) } : nil
    throw CUDAError.call(call(), status: result, name: Self.statuses[result] ?? "CUptiResult", detail: detail)
  }

  /// CUptiResult names (cupti_result.h) of the results our calls can give; the others print as their number.
  public static let statuses: [Int32: String] = [
    0: "CUPTI_SUCCESS", 1: "CUPTI_ERROR_INVALID_PARAMETER", 2: "CUPTI_ERROR_INVALID_DEVICE", 3: "CUPTI_ERROR_INVALID_CONTEXT",
    7: "CUPTI_ERROR_INVALID_OPERATION", 8: "CUPTI_ERROR_OUT_OF_MEMORY", 12: "CUPTI_ERROR_MAX_LIMIT_REACHED",
    13: "CUPTI_ERROR_NOT_READY", 14: "CUPTI_ERROR_NOT_COMPATIBLE", 15: "CUPTI_ERROR_NOT_INITIALIZED",
    18: "CUPTI_ERROR_QUEUE_EMPTY", 21: "CUPTI_ERROR_INVALID_KIND", 27: "CUPTI_ERROR_NOT_SUPPORTED",
    35: "CUPTI_ERROR_INSUFFICIENT_PRIVILEGES", 39: "CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED",
    43: "CUPTI_ERROR_MIG_DEVICE_NOT_SUPPORTED", 999: "CUPTI_ERROR_UNKNOWN",
  ]
}
