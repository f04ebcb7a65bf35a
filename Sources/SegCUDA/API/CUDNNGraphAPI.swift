import CCUDA

// MARK: - cuDNN backend (graph) API table

/// cuDNN 9's backend API (every object a descriptor: create, set attributes, finalize, read
/// attributes, execute), resolved from the same libcudnn.so.9 as `CUDNNAPI`.
public struct CUDNNGraphAPI: @unchecked Sendable {
  let cudnnBackendCreateDescriptor: ccuda_cudnnBackendCreateDescriptor_fn
  let cudnnBackendDestroyDescriptor: ccuda_cudnnBackendDestroyDescriptor_fn
  let cudnnBackendFinalize: ccuda_cudnnBackendFinalize_fn
  let cudnnBackendSetAttribute: ccuda_cudnnBackendSetAttribute_fn
  let cudnnBackendGetAttribute: ccuda_cudnnBackendGetAttribute_fn
  let cudnnBackendExecute: ccuda_cudnnBackendExecute_fn
  /// The legacy table of the same library: its version, handle and error strings.
  let base: CUDNNAPI

  init(_ s: some SymbolSource, base: CUDNNAPI) throws {
    self.base = base
    cudnnBackendCreateDescriptor = try s.load("cudnnBackendCreateDescriptor")
    cudnnBackendDestroyDescriptor = try s.load("cudnnBackendDestroyDescriptor")
    cudnnBackendFinalize = try s.load("cudnnBackendFinalize")
    cudnnBackendSetAttribute = try s.load("cudnnBackendSetAttribute")
    cudnnBackendGetAttribute = try s.load("cudnnBackendGetAttribute")
    cudnnBackendExecute = try s.load("cudnnBackendExecute")
  }

  /// The backend table of `base`'s library (which must be a loaded library, not a recording).
  public static func load(_ base: CUDNNAPI) throws -> CUDNNGraphAPI {
    guard let lib = base.library else { throw CUDAError(.unsupported, "cuDNN's graph API needs a loaded libcudnn") }
    return try CUDNNGraphAPI(lib, base: base)
  }

  /// The cuDNN version the device descriptions from JSON need (9.11: CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR
  /// takes a JSON description from then on).
  public static let deviceDescriptionMinimumVersion = 91100

  /// cuDNN's version number, e.g. 92801 for 9.28.1.
  public var version: Int { base.version() }
}
