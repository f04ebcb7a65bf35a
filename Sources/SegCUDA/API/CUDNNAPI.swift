import CCUDA

// MARK: - cuDNN table

/// cuDNN 9's legacy convolution API, resolved from libcudnn.so.9.
public struct CUDNNAPI: @unchecked Sendable {
  let cudnnGetVersion: ccuda_cudnnGetVersion_fn
  let cudnnGetCudartVersion: ccuda_cudnnGetCudartVersion_fn
  let cudnnGetErrorString: ccuda_cudnnGetErrorString_fn
  let cudnnGetLastErrorString: ccuda_cudnnGetLastErrorString_fn
  let cudnnCreate: ccuda_cudnnCreate_fn
  let cudnnDestroy: ccuda_cudnnDestroy_fn
  let cudnnSetStream: ccuda_cudnnSetStream_fn
  let cudnnCreateTensorDescriptor: ccuda_cudnnCreateTensorDescriptor_fn
  let cudnnSetTensor4dDescriptor: ccuda_cudnnSetTensor4dDescriptor_fn
  let cudnnSetTensor4dDescriptorEx: ccuda_cudnnSetTensor4dDescriptorEx_fn
  let cudnnSetTensorNdDescriptor: ccuda_cudnnSetTensorNdDescriptor_fn
  let cudnnDestroyTensorDescriptor: ccuda_cudnnDestroyTensorDescriptor_fn
  let cudnnCreateFilterDescriptor: ccuda_cudnnCreateFilterDescriptor_fn
  let cudnnSetFilter4dDescriptor: ccuda_cudnnSetFilter4dDescriptor_fn
  let cudnnDestroyFilterDescriptor: ccuda_cudnnDestroyFilterDescriptor_fn
  let cudnnCreateConvolutionDescriptor: ccuda_cudnnCreateConvolutionDescriptor_fn
  let cudnnSetConvolution2dDescriptor: ccuda_cudnnSetConvolution2dDescriptor_fn
  let cudnnSetConvolutionMathType: ccuda_cudnnSetConvolutionMathType_fn
  let cudnnDestroyConvolutionDescriptor: ccuda_cudnnDestroyConvolutionDescriptor_fn
  let cudnnGetConvolution2dForwardOutputDim: ccuda_cudnnGetConvolution2dForwardOutputDim_fn
  let cudnnFindConvolutionForwardAlgorithm: ccuda_cudnnFindConvolutionForwardAlgorithm_fn
  let cudnnFindConvolutionBackwardDataAlgorithm: ccuda_cudnnFindConvolutionBackwardDataAlgorithm_fn
  let cudnnFindConvolutionBackwardFilterAlgorithm: ccuda_cudnnFindConvolutionBackwardFilterAlgorithm_fn
  let cudnnGetConvolutionForwardWorkspaceSize: ccuda_cudnnGetConvolutionForwardWorkspaceSize_fn
  let cudnnGetConvolutionBackwardDataWorkspaceSize: ccuda_cudnnGetConvolutionBackwardDataWorkspaceSize_fn
  let cudnnGetConvolutionBackwardFilterWorkspaceSize: ccuda_cudnnGetConvolutionBackwardFilterWorkspaceSize_fn
  let cudnnConvolutionForward: ccuda_cudnnConvolutionForward_fn
  let cudnnConvolutionBackwardData: ccuda_cudnnConvolutionBackwardData_fn
  let cudnnConvolutionBackwardFilter: ccuda_cudnnConvolutionBackwardFilter_fn

  /// The library the table came from (nil for a recorded table in tests).
  public let library: SharedLibrary?

  init(_ s: some SymbolSource, library: SharedLibrary?) throws {
    self.library = library
    cudnnGetVersion = try s.load("cudnnGetVersion")
    cudnnGetCudartVersion = try s.load("cudnnGetCudartVersion")
    cudnnGetErrorString = try s.load("cudnnGetErrorString")
    cudnnGetLastErrorString = try s.load("cudnnGetLastErrorString")
    cudnnCreate = try s.load("cudnnCreate")
    cudnnDestroy = try s.load("cudnnDestroy")
    cudnnSetStream = try s.load("cudnnSetStream")
    cudnnCreateTensorDescriptor = try s.load("cudnnCreateTensorDescriptor")
    cudnnSetTensor4dDescriptor = try s.load("cudnnSetTensor4dDescriptor")
    cudnnSetTensor4dDescriptorEx = try s.load("cudnnSetTensor4dDescriptorEx")
    cudnnSetTensorNdDescriptor = try s.load("cudnnSetTensorNdDescriptor")
    cudnnDestroyTensorDescriptor = try s.load("cudnnDestroyTensorDescriptor")
    cudnnCreateFilterDescriptor = try s.load("cudnnCreateFilterDescriptor")
    cudnnSetFilter4dDescriptor = try s.load("cudnnSetFilter4dDescriptor")
    cudnnDestroyFilterDescriptor = try s.load("cudnnDestroyFilterDescriptor")
    cudnnCreateConvolutionDescriptor = try s.load("cudnnCreateConvolutionDescriptor")
    cudnnSetConvolution2dDescriptor = try s.load("cudnnSetConvolution2dDescriptor")
    cudnnSetConvolutionMathType = try s.load("cudnnSetConvolutionMathType")
    cudnnDestroyConvolutionDescriptor = try s.load("cudnnDestroyConvolutionDescriptor")
    cudnnGetConvolution2dForwardOutputDim = try s.load("cudnnGetConvolution2dForwardOutputDim")
    cudnnFindConvolutionForwardAlgorithm = try s.load("cudnnFindConvolutionForwardAlgorithm")
    cudnnFindConvolutionBackwardDataAlgorithm = try s.load("cudnnFindConvolutionBackwardDataAlgorithm")
    cudnnFindConvolutionBackwardFilterAlgorithm = try s.load("cudnnFindConvolutionBackwardFilterAlgorithm")
    cudnnGetConvolutionForwardWorkspaceSize = try s.load("cudnnGetConvolutionForwardWorkspaceSize")
    cudnnGetConvolutionBackwardDataWorkspaceSize = try s.load("cudnnGetConvolutionBackwardDataWorkspaceSize")
    cudnnGetConvolutionBackwardFilterWorkspaceSize = try s.load("cudnnGetConvolutionBackwardFilterWorkspaceSize")
    cudnnConvolutionForward = try s.load("cudnnConvolutionForward")
    cudnnConvolutionBackwardData = try s.load("cudnnConvolutionBackwardData")
    cudnnConvolutionBackwardFilter = try s.load("cudnnConvolutionBackwardFilter")
  }

  /// The table from the cuDNN found by `loader`, which must be cuDNN 9.
  public static func load(_ loader: CUDALoader) throws -> CUDNNAPI {
    let lib = try loader.library(.cudnn)
    let api = try CUDNNAPI(lib, library: lib)
    try checkMajorVersion(api.version(), path: lib.path)
    return api
  }

  /// The cuDNN major version the legacy convolution API we call is written against.
  static let supportedMajorVersion = 9

  /// Throws when `version` (cudnnGetVersion's number) is not cuDNN 9: a library that answers to
  /// the soname but has another ABI would fail later, inside a convolution.
  static func checkMajorVersion(_ version: Int, path: String) throws {
    let major = version / 10000
    guard major != supportedMajorVersion else { return }
    throw CUDAError(
      .unsupported,
      "cuDNN \(DoctorReport.libraryVersion(version)) at \(path) is not cuDNN \(supportedMajorVersion); install cuDNN 9 "
        + "(`pip install nvidia-cudnn-cu13`, or nvidia-cudnn-cu12 with CUDA 12) or point UNET_CUDA_PATH at its lib folder")
  }

  /// cuDNN's version number, e.g. 90600 for 9.6.0 (no handle or GPU needed).
  public func version() -> Int { Int(cudnnGetVersion()) }

  /// Throws an error naming `call`, cuDNN's status and its last error message.
  func check(_ status: ccuda_cudnnStatus, _ call: @autoclosure () -> String) throws {
    guard status != CCUDA_CUDNN_STATUS_SUCCESS else { return }
    var detail = cudnnGetErrorString(status).map { String(cString: $0) } ?? ""
    var buffer = [CChar](repeating: 0, count: 1024)
    cudnnGetLastErrorString(&buffer, buffer.count)
    let last = String(cString: buffer)
    if !last.isEmpty { detail += detail.isEmpty ? last : " (\(last))" }
    throw CUDAError.call(call(), status: status, name: CUDAStatus.cudnn[status] ?? "cudnnStatus_t", detail: detail)
  }
}
