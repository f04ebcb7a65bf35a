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
  private var algorithms: [String: Int32] = [:]
  /// One convolution at a time: the handle and the algorithm cache are not shared between threads
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
    let dt = try Self.cudnnType(c.dtype)
    try lock.withLock {
      try withDescriptors(c.geometry, c.pad, dt) { conv in
        let xd = try tensor(c.dataShape, dt), yd = try tensor(c.outputShape, dt)
        let wd = try filterDescriptor(c.filterShape, dt)
        defer { destroy(xd, yd, wd) }
        let key = "fwd \(c.dataShape) \(c.filterShape) \(c.outputShape) \(c.geometry) \(c.pad) \(dt)"
        let algo = try algorithm(key) {
          var n: Int32 = 0
          var perf = [ccuda_cudnnAlgoPerf](repeating: ccuda_cudnnAlgoPerf(), count: 8)
          try api.check(api.cudnnFindConvolutionForwardAlgorithm(handle, xd, wd, conv, yd, 8, &n, &perf), "cudnnFindConvolutionForwardAlgorithm")
          return Array(perf.prefix(Int(n)))
        }
        var bytes = 0
        try api.check(api.cudnnGetConvolutionForwardWorkspaceSize(handle, xd, wd, conv, yd, algo, &bytes), "cudnnGetConvolutionForwardWorkspaceSize")
        let workspace = try b.output(TensorType([max(bytes, 1)], .u8))
        var alpha: Float = 1, beta: Float = 0
        try api.check(
          api.cudnnConvolutionForward(
            handle, &alpha, xd, address(c.data), wd, address(c.filter), conv, algo,
            address(workspace.pointer), bytes, &beta, yd, address(c.output)),
          "cudnnConvolutionForward")
      }
    }
  }

  func backwardData(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    let dt = try Self.cudnnType(c.dtype)
    try lock.withLock {
      try withDescriptors(c.geometry, c.pad, dt) { conv in
        let dyd = try tensor(c.outputShape, dt), dxd = try tensor(c.dataShape, dt)
        let wd = try filterDescriptor(c.filterShape, dt)
        defer { destroy(dyd, dxd, wd) }
        let key = "bwd-data \(c.outputShape) \(c.filterShape) \(c.dataShape) \(c.geometry) \(c.pad) \(dt)"
        let algo = try algorithm(key) {
          var n: Int32 = 0
          var perf = [ccuda_cudnnAlgoPerf](repeating: ccuda_cudnnAlgoPerf(), count: 8)
          try api.check(api.cudnnFindConvolutionBackwardDataAlgorithm(handle, wd, dyd, conv, dxd, 8, &n, &perf), "cudnnFindConvolutionBackwardDataAlgorithm")
          return Array(perf.prefix(Int(n)))
        }
        var bytes = 0
        try api.check(api.cudnnGetConvolutionBackwardDataWorkspaceSize(handle, wd, dyd, conv, dxd, algo, &bytes), "cudnnGetConvolutionBackwardDataWorkspaceSize")
        let workspace = try b.output(TensorType([max(bytes, 1)], .u8))
        var alpha: Float = 1, beta: Float = 0
        try api.check(
          api.cudnnConvolutionBackwardData(
            handle, &alpha, wd, address(c.filter), dyd, address(c.output), conv, algo,
            address(workspace.pointer), bytes, &beta, dxd, address(c.data)),
          "cudnnConvolutionBackwardData")
      }
    }
  }

  func backwardFilter(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    let dt = try Self.cudnnType(c.dtype)
    try lock.withLock {
      try withDescriptors(c.geometry, c.pad, dt) { conv in
        let xd = try tensor(c.dataShape, dt), dyd = try tensor(c.outputShape, dt)
        let wd = try filterDescriptor(c.filterShape, dt)
        defer { destroy(xd, dyd, wd) }
        let key = "bwd-filter \(c.dataShape) \(c.outputShape) \(c.filterShape) \(c.geometry) \(c.pad) \(dt)"
        let algo = try algorithm(key) {
          var n: Int32 = 0
          var perf = [ccuda_cudnnAlgoPerf](repeating: ccuda_cudnnAlgoPerf(), count: 8)
          try api.check(api.cudnnFindConvolutionBackwardFilterAlgorithm(handle, xd, dyd, conv, wd, 8, &n, &perf), "cudnnFindConvolutionBackwardFilterAlgorithm")
          return Array(perf.prefix(Int(n)))
        }
        var bytes = 0
        try api.check(api.cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, xd, dyd, conv, wd, algo, &bytes), "cudnnGetConvolutionBackwardFilterWorkspaceSize")
        let workspace = try b.output(TensorType([max(bytes, 1)], .u8))
        var alpha: Float = 1, beta: Float = 0
        try api.check(
          api.cudnnConvolutionBackwardFilter(
            handle, &alpha, xd, address(c.data), dyd, address(c.output), conv, algo,
            address(workspace.pointer), bytes, &beta, wd, address(c.filter)),
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

  /// The algorithm for `key`, searched once by timing every candidate (cuDNN's Find): the
  /// fastest that works, or with `deterministic` the fastest deterministic one if any.
  private func algorithm(_ key: String, _ search: () throws -> [ccuda_cudnnAlgoPerf]) throws -> Int32 {
    if let a = algorithms[key] { return a }
    let results = try context.current(search).filter { $0.status == CCUDA_CUDNN_STATUS_SUCCESS }
    let preferred = deterministic ? results.first(where: { $0.determinism == CCUDA_CUDNN_DETERMINISTIC }) : nil
    guard let best = preferred ?? results.first else {
      throw CUDAError(.unsupported, "cuDNN has no algorithm for \(key)")
    }
    algorithms[key] = best.algo
    return best.algo
  }

  /// Runs `body` with a convolution descriptor for the geometry (cross-correlation, f32 compute,
  /// Tensor Cores for f16 and bf16, and for f32 with `tensorFloat32`), the context current.
  private func withDescriptors(
    _ g: ConvGeometry, _ pad: (Int, Int), _ dt: Int32, _ body: (ccuda_cudnnConvolutionDescriptor) throws -> Void
  ) throws {
    try context.current {
      var conv: ccuda_cudnnConvolutionDescriptor? = nil
      try api.check(api.cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor")
      defer { _ = api.cudnnDestroyConvolutionDescriptor(conv) }
      try api.check(
        api.cudnnSetConvolution2dDescriptor(
          conv, Int32(pad.0), Int32(pad.1), Int32(g.strideH), Int32(g.strideW), 1, 1, CCUDA_CUDNN_CROSS_CORRELATION,
          CCUDA_CUDNN_DATA_FLOAT),
        "cudnnSetConvolution2dDescriptor")
      let math = dt == CCUDA_CUDNN_DATA_FLOAT && !tensorFloat32 ? CCUDA_CUDNN_FMA_MATH : CCUDA_CUDNN_TENSOR_OP_MATH
      try api.check(api.cudnnSetConvolutionMathType(conv, math), "cudnnSetConvolutionMathType")
      try body(conv!)
    }
  }

  /// An NHWC tensor descriptor for [N,H,W,C].
  private func tensor(_ s: Shape, _ dt: Int32) throws -> ccuda_cudnnTensorDescriptor {
    var d: ccuda_cudnnTensorDescriptor? = nil
    try api.check(api.cudnnCreateTensorDescriptor(&d), "cudnnCreateTensorDescriptor")
    try api.check(
      api.cudnnSetTensor4dDescriptor(d, CCUDA_CUDNN_TENSOR_NHWC, dt, Int32(s[0]), Int32(s[3]), Int32(s[1]), Int32(s[2])),
      "cudnnSetTensor4dDescriptor(\(s))")
    return d!
  }

  /// An OHWI filter descriptor (cuDNN's NHWC filter format) for [O,KH,KW,C].
  private func filterDescriptor(_ s: Shape, _ dt: Int32) throws -> ccuda_cudnnFilterDescriptor {
    let (o, kh, kw, c) = (s[0], s[1], s[2], s[3])
    var d: ccuda_cudnnFilterDescriptor? = nil
    try api.check(api.cudnnCreateFilterDescriptor(&d), "cudnnCreateFilterDescriptor")
    try api.check(
      api.cudnnSetFilter4dDescriptor(d, dt, CCUDA_CUDNN_TENSOR_NHWC, Int32(o), Int32(c), Int32(kh), Int32(kw)),
      "cudnnSetFilter4dDescriptor")
    return d!
  }

  private func destroy(_ a: ccuda_cudnnTensorDescriptor, _ b: ccuda_cudnnTensorDescriptor, _ f: ccuda_cudnnFilterDescriptor) {
    _ = api.cudnnDestroyTensorDescriptor(a)
    _ = api.cudnnDestroyTensorDescriptor(b)
    _ = api.cudnnDestroyFilterDescriptor(f)
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
