import CCUDA
import Foundation
import SegCore

// MARK: - cuDNN convolutions

/// conv2d, conv2dBackwardData (and so transposed convolution) and conv2dBackwardFilter through
/// cuDNN's legacy API, on NHWC tensors in f32, f16 or bf16. Our filters are HWIO; cuDNN's NHWC
/// filters are OHWI, so filters are reordered on the way in and the filter gradient on the way
/// out. cuDNN pads symmetrically: an asymmetric padding (TensorFlow's 'same' with an even excess)
/// is applied with the pad kernel instead. Algorithms are searched once per shape (the fastest,
/// or the fastest deterministic with `CUDAOptions.deterministicConvolutions`, UNET_CUDNN_DETERMINISTIC=1);
/// bias and ReLU run as one kernel of ours, in place.
///
/// Checked on an H100 (cuDNN 9.14) by `unet doctor --check`; CI compiles it against our
/// declarations, which the header test checks against the real cudnn.h.
final class CUDNNConvolutions: @unchecked Sendable {
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

  // MARK: Ops

  /// conv2d (x, filter[, bias]); nil unless the input, the filter and the output share one dtype
  /// cuDNN convolves (f32, f16, bf16).
  func conv2d(_ b: CUDABackend, _ p: Conv2D, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dt = dataType(b, x, out) else { return nil }
    return try lock.withLock { try forward(b, p, x, out, dt) }
  }

  /// conv2dBackwardData (dy, filter), which is also the transposed convolution; nil as for conv2d.
  func conv2dBackwardData(_ b: CUDABackend, _ p: Conv2DBackwardData, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dt = dataType(b, x, out) else { return nil }
    return try lock.withLock { try backwardData(b, p, x, out, dt) }
  }

  /// conv2dBackwardFilter (x, dy); nil as for conv2d.
  func conv2dBackwardFilter(_ b: CUDABackend, _ p: Conv2DBackwardFilter, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dt = dataType(b, x, out) else { return nil }
    return try lock.withLock { try backwardFilter(b, p, x, out, dt) }
  }

  /// cuDNN's data type for the first two operands and the output, when they share one it convolves.
  func dataType(_ b: CUDABackend, _ x: [DeviceOperand], _ out: TensorType) -> Int32? {
    b.floatType(Array(x.prefix(2)), out).flatMap(Self.dataType)
  }

  private func forward(
    _ b: CUDABackend, _ p: Conv2D, _ x: [DeviceOperand], _ out: TensorType, _ dt: Int32
  ) throws -> CUDAStorage {
    let fs = x[1].type.shape
    let (input, pad) = try padded(b, x[0], p.geometry.padding)
    let filter = try reorderToOHWI(b, x[1])
    let y = try b.output(out)
    try withDescriptors(p.geometry, pad, dt) { conv in
      let xd = try tensor(input.type.shape, dt), yd = try tensor(out.shape, dt)
      let wd = try filterDescriptor(o: fs[3], c: fs[2], kh: fs[0], kw: fs[1], dt)
      defer { destroy(xd, yd, wd) }
      let key = "fwd \(input.type) \(fs) \(out.shape) \(p.geometry) \(dt)"
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
          handle, &alpha, xd, address(input.pointer), wd, address(filter.pointer), conv, algo,
          address(workspace.pointer), bytes, &beta, yd, address(y.pointer)),
        "cudnnConvolutionForward")
    }
    try epilogue(b, p, x, y, out)
    return y
  }

  /// The bias and activation of conv2d, applied to its output `y` in place.
  func epilogue(_ b: CUDABackend, _ p: Conv2D, _ x: [DeviceOperand], _ y: CUDAStorage, _ out: TensorType) throws {
    let n = out.shape.count
    if x.count == 3 {
      // y = act(y + bias), one pass in place (each work item reads and writes its own 16-byte vector).
      try b.device.launch(
        KernelNames.name("biasActivation", out.dtype), count: vectorItems(n, out.dtype),
        arguments: [
          .pointer(y.pointer), .pointer(x[2].pointer), .int64(Int64(n)), .int64(Int64(out.shape[3])),
          .int32(p.activation == .relu ? 1 : 0),
        ])
    } else if p.activation == .relu {
      try b.device.launch(
        KernelNames.name("relu", out.dtype), count: n,
        arguments: [.pointer(y.pointer), .pointer(y.pointer), .int64(Int64(n)), .double(0)])
    }
  }

  private func backwardData(
    _ b: CUDABackend, _ p: Conv2DBackwardData, _ x: [DeviceOperand], _ out: TensorType, _ dt: Int32
  ) throws -> CUDAStorage {
    let (dy, fs) = (x[0], x[1].type.shape)
    let pd = p.geometry.padding
    let symmetric = pd.top == pd.bottom && pd.left == pd.right
    // With an asymmetric padding the gradient of the padded input is computed, then cropped.
    let full = symmetric
      ? out : TensorType([out.shape[0], out.shape[1] + pd.top + pd.bottom, out.shape[2] + pd.left + pd.right, out.shape[3]], out.dtype)
    let pad = symmetric ? (pd.top, pd.left) : (0, 0)
    let filter = try reorderToOHWI(b, x[1])
    let dx = try b.output(full)
    try withDescriptors(p.geometry, pad, dt) { conv in
      let dyd = try tensor(dy.type.shape, dt), dxd = try tensor(full.shape, dt)
      let wd = try filterDescriptor(o: fs[3], c: fs[2], kh: fs[0], kw: fs[1], dt)
      defer { destroy(dyd, dxd, wd) }
      let key = "bwd-data \(dy.type) \(fs) \(full.shape) \(p.geometry) \(dt)"
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
          handle, &alpha, wd, address(filter.pointer), dyd, address(dy.pointer), conv, algo,
          address(workspace.pointer), bytes, &beta, dxd, address(dx.pointer)),
        "cudnnConvolutionBackwardData")
    }
    if symmetric { return dx }
    let operand = DeviceOperand(pointer: dx.pointer, type: full, storage: dx)
    let crop = Slice(starts: [0, pd.top, pd.left, 0], sizes: out.shape.dims)
    return try b.slice(crop, [operand], out)
  }

  private func backwardFilter(
    _ b: CUDABackend, _ p: Conv2DBackwardFilter, _ x: [DeviceOperand], _ out: TensorType, _ dt: Int32
  ) throws -> CUDAStorage {
    let dy = x[1]
    let (input, pad) = try padded(b, x[0], p.geometry.padding)
    let (kh, kw, c, o) = (out.shape[0], out.shape[1], out.shape[2], out.shape[3])
    let ohwi = try b.output(TensorType([o, kh, kw, c], out.dtype))
    try withDescriptors(p.geometry, pad, dt) { conv in
      let xd = try tensor(input.type.shape, dt), dyd = try tensor(dy.type.shape, dt)
      let wd = try filterDescriptor(o: o, c: c, kh: kh, kw: kw, dt)
      defer { destroy(xd, dyd, wd) }
      let key = "bwd-filter \(input.type) \(dy.type.shape) \(out.shape) \(p.geometry) \(dt)"
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
          handle, &alpha, xd, address(input.pointer), dyd, address(dy.pointer), conv, algo,
          address(workspace.pointer), bytes, &beta, wd, address(ohwi.pointer)),
        "cudnnConvolutionBackwardFilter")
    }
    return try reorderFromOHWI(b, ohwi, out)
  }

  /// OHWI [O,KH,KW,C] -> HWIO `out` [KH,KW,C,O], our filter layout.
  func reorderFromOHWI(_ b: CUDABackend, _ ohwi: CUDAStorage, _ out: TensorType) throws -> CUDAStorage {
    let (kh, kw, c, o) = (out.shape[0], out.shape[1], out.shape[2], out.shape[3])
    let dw = try b.output(out)
    let space = StridedSpace(dims: [kh, kw, c, o], strides: [[kw * c, c, 1, kh * kw * c], out.shape.strides]).merged()
    try b.copy(from: ohwi.pointer, to: dw.pointer, space: space, dtype: out.dtype)
    return dw
  }

  // MARK: Helpers

  /// The input with an asymmetric padding applied by the pad kernel (then cuDNN pads nothing), or
  /// the input itself and the symmetric padding for cuDNN.
  private func padded(_ b: CUDABackend, _ x: DeviceOperand, _ p: Padding2D) throws -> (DeviceOperand, (Int, Int)) {
    if p.top == p.bottom && p.left == p.right { return (x, (p.top, p.left)) }
    let s = x.type.shape
    let type = TensorType([s[0], s[1] + p.top + p.bottom, s[2] + p.left + p.right, s[3]], x.type.dtype)
    let op = Pad(before: [0, p.top, p.left, 0], after: [0, p.bottom, p.right, 0], mode: .zero)
    let storage = try b.pad(op, [x], type)
    return (DeviceOperand(pointer: storage.pointer, type: type, storage: storage), (0, 0))
  }

  /// HWIO [KH,KW,C,O] -> OHWI [O,KH,KW,C], cuDNN's NHWC filter layout.
  func reorderToOHWI(_ b: CUDABackend, _ f: DeviceOperand) throws -> CUDAStorage {
    let s = f.type.shape
    let (kh, kw, c, o) = (s[0], s[1], s[2], s[3])
    let y = try b.output(TensorType([o, kh, kw, c], f.type.dtype))
    let space = StridedSpace(dims: [o, kh, kw, c], strides: [[1, kw * c * o, c * o, o], [kh * kw * c, kw * c, c, 1]]).merged()
    try b.copy(from: f.pointer, to: y.pointer, space: space, dtype: f.type.dtype)
    return y
  }

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

  /// An OHWI filter descriptor (cuDNN's NHWC filter format).
  private func filterDescriptor(o: Int, c: Int, kh: Int, kw: Int, _ dt: Int32) throws -> ccuda_cudnnFilterDescriptor {
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
