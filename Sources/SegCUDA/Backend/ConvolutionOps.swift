import CCUDA
import Foundation
import SegCore

// MARK: - cuDNN convolutions

/// conv2d, conv2dBackwardData (and so transposed convolution) and conv2dBackwardFilter through
/// cuDNN's legacy API, on NHWC tensors in f32, f16 or bf16 (the layouts, padding, bias and ReLU
/// around each call are ours: `ConvolutionLibrary`'s extension). Algorithms are searched once per shape (the fastest,
/// or the fastest deterministic with `CUDAOptions.deterministicConvolutions`, UNET_CUDNN_DETERMINISTIC=1);
/// bias and ReLU run as one kernel of ours, in place.
///
/// Checked on an H100 (cuDNN 9.14) by `unet doctor --check`; CI compiles it against our
/// declarations, which the header test checks against the real cudnn.h.
final class CUDNNConvolutions: ConvolutionLibrary, @unchecked Sendable {
  let api: CUDNNAPI
  let context: CUDAContext
  let handle: ccuda_cudnnHandle
  /// Whether f32 convolutions may use TF32 Tensor Cores (`--precision tf32`); otherwise they run in
  /// full f32 (FMA math), so that fp32 means fp32.
  let tensorFloat32: Bool
  /// Whether to take the fastest deterministic algorithm rather than the fastest: bit-identical
  /// reruns at some cost in speed. Off by default, as PyTorch's cudnn.benchmark and TensorFlow choose.
  let deterministic: Bool
  /// Descriptors and algorithm per shape, made once (`ConvolutionSetups`).
  let setups = ConvolutionSetups<CUDNNConvolutionSetup>()
  /// One convolution at a time: the handle and the setups are not shared between threads
  /// (the graph API's convolutions, which use the same handle, take it too).
  let lock = NSLock()

  init(api: CUDNNAPI, context: CUDAContext, tensorFloat32: Bool, deterministic: Bool) throws {
    self.api = api
    self.context = context
    self.tensorFloat32 = tensorFloat32
    self.deterministic = deterministic
    var h: ccuda_cudnnHandle? = nil
    try context.current { try api.check(api.cudnnCreate(&h), "cudnnCreate") }
    guard let h else { throw CUDAError(.callFailed, "cudnnCreate returned no handle") }
    handle = h
    try context.current { try api.check(api.cudnnSetStream(h, context.stream), "cudnnSetStream") }
  }

  deinit { _ = api.cudnnDestroy(handle) }

  // MARK: Library calls (ConvolutionLibrary)

  func forward(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    try lock.withLock {
      let s = try setup(.forward, c) { s, perf, n in
        try api.check(
          api.cudnnFindConvolutionForwardAlgorithm(handle, s.data, s.filter, s.convolution, s.output, 8, &n, &perf),
          "cudnnFindConvolutionForwardAlgorithm")
      } workspace: { s, algo, bytes in
        try api.check(
          api.cudnnGetConvolutionForwardWorkspaceSize(handle, s.data, s.filter, s.convolution, s.output, algo, &bytes),
          "cudnnGetConvolutionForwardWorkspaceSize")
      }
      let workspace = try b.output(TensorType([max(s.workspaceBytes, 1)], .u8))
      var alpha: Float = 1, beta: Float = 0
      try context.current {
        try api.check(
          api.cudnnConvolutionForward(
            handle, &alpha, s.data, address(c.data), s.filter, address(c.filter), s.convolution, s.algorithm,
            address(workspace.pointer), s.workspaceBytes, &beta, s.output, address(c.output)),
          "cudnnConvolutionForward")
      }
    }
  }

  func backwardData(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    try lock.withLock {
      let s = try setup(.backwardData, c) { s, perf, n in
        try api.check(
          api.cudnnFindConvolutionBackwardDataAlgorithm(handle, s.filter, s.output, s.convolution, s.data, 8, &n, &perf),
          "cudnnFindConvolutionBackwardDataAlgorithm")
      } workspace: { s, algo, bytes in
        try api.check(
          api.cudnnGetConvolutionBackwardDataWorkspaceSize(handle, s.filter, s.output, s.convolution, s.data, algo, &bytes),
          "cudnnGetConvolutionBackwardDataWorkspaceSize")
      }
      let workspace = try b.output(TensorType([max(s.workspaceBytes, 1)], .u8))
      var alpha: Float = 1, beta: Float = 0
      try context.current {
        try api.check(
          api.cudnnConvolutionBackwardData(
            handle, &alpha, s.filter, address(c.filter), s.output, address(c.output), s.convolution, s.algorithm,
            address(workspace.pointer), s.workspaceBytes, &beta, s.data, address(c.data)),
          "cudnnConvolutionBackwardData")
      }
    }
  }

  func backwardFilter(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    try lock.withLock {
      let s = try setup(.backwardFilter, c) { s, perf, n in
        try api.check(
          api.cudnnFindConvolutionBackwardFilterAlgorithm(handle, s.data, s.output, s.convolution, s.filter, 8, &n, &perf),
          "cudnnFindConvolutionBackwardFilterAlgorithm")
      } workspace: { s, algo, bytes in
        try api.check(
          api.cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, s.data, s.output, s.convolution, s.filter, algo, &bytes),
          "cudnnGetConvolutionBackwardFilterWorkspaceSize")
      }
      let workspace = try b.output(TensorType([max(s.workspaceBytes, 1)], .u8))
      var alpha: Float = 1, beta: Float = 0
      try context.current {
        try api.check(
          api.cudnnConvolutionBackwardFilter(
            handle, &alpha, s.data, address(c.data), s.output, address(c.output), s.convolution, s.algorithm,
            address(workspace.pointer), s.workspaceBytes, &beta, s.filter, address(c.filter)),
          "cudnnConvolutionBackwardFilter")
      }
    }
  }

  /// cuDNN's data type for the first two operands and the output, when they share one it convolves.
  func dataType(_ b: CUDABackend, _ x: [DeviceOperand], _ out: TensorType) -> Int32? {
    convolvedType(b, x, out).flatMap(Self.dataType)
  }

  static func cudnnType(_ d: DType) throws -> Int32 {
    guard let t = dataType(d) else { throw CUDAError(.unsupported, "cuDNN does not convolve \(d)") }
    return t
  }

  // MARK: Helpers

  /// The descriptors and algorithm of `c` in `direction`, made at the shape's first call and kept
  /// (`setups`): the algorithm searched once by timing every candidate (cuDNN's Find, `find`), the
  /// fastest that works or with `deterministic` the fastest deterministic one, and its workspace
  /// size asked once (`workspace`).
  private func setup(
    _ direction: ConvolutionKey.Direction, _ c: ConvolutionCall,
    find: (CUDNNConvolutionSetup, inout [ccuda_cudnnAlgoPerf], inout Int32) throws -> Void,
    workspace: (CUDNNConvolutionSetup, Int32, inout Int) throws -> Void
  ) throws -> CUDNNConvolutionSetup {
    let key = ConvolutionKey(direction, c)
    return try setups.setup(key) {
      let s = try CUDNNConvolutionSetup(api: api, key: key, tensorFloat32: tensorFloat32)
      try context.current {
        var n: Int32 = 0
        var perf = [ccuda_cudnnAlgoPerf](repeating: ccuda_cudnnAlgoPerf(), count: 8)
        try find(s, &perf, &n)
        let results = perf.prefix(Int(n)).filter { $0.status == CCUDA_CUDNN_STATUS_SUCCESS }
        let preferred = deterministic ? results.first(where: { $0.determinism == CCUDA_CUDNN_DETERMINISTIC }) : nil
        guard let best = preferred ?? results.first else {
          throw CUDAError(.unsupported, "cuDNN has no \(direction) algorithm for \(key)")
        }
        s.algorithm = best.algo
        try workspace(s, best.algo, &s.workspaceBytes)
      }
      return s
    }
  }

  func address(_ p: UInt64) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(p)) }

  /// cuDNN's data type for a dtype it convolves.
  static func dataType(_ d: DType) -> Int32? {
    switch d {
    case .f32: return CCUDA_CUDNN_DATA_FLOAT
    case .f16: return CCUDA_CUDNN_DATA_HALF
    case .bf16: return CCUDA_CUDNN_DATA_BFLOAT16
    default: return nil
    }
  }
}
