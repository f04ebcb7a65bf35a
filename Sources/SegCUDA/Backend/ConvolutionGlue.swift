import SegCore

// MARK: - The library's side of a convolution

/// One convolution as a convolution library takes it: NHWC data, an OHWI filter [O,KH,KW,C], a
/// symmetric padding (top, left), in one dtype (f32, f16 or bf16).
struct ConvolutionCall {
  let geometry: ConvGeometry
  let pad: (Int, Int)
  let dtype: DType
  /// The input (forward, filter gradient) or the input gradient (backward data), [N,H,W,C].
  let data: UInt64
  let dataShape: Shape
  /// The filter (forward, backward data) or the filter gradient, OHWI.
  let filter: UInt64
  let filterShape: Shape
  /// The output (forward) or the output gradient, [N,OH,OW,O].
  let output: UInt64
  let outputShape: Shape
}

/// What runs the convolutions themselves once our kernels have laid the operands out for them:
/// cuDNN on a GPU (`CUDNNConvolutions`); the tests put a host stand-in here, so that the
/// backend's whole training step runs (and is counted) on the kernel emulator.
protocol ConvolutionLibrary: AnyObject, Sendable {
  /// Writes `call.output` from the data and the filter.
  func forward(_ b: CUDABackend, _ call: ConvolutionCall) throws
  /// Writes `call.data` (the input gradient) from the output gradient and the filter.
  func backwardData(_ b: CUDABackend, _ call: ConvolutionCall) throws
  /// Writes `call.filter` (the filter gradient, OHWI) from the data and the output gradient.
  func backwardFilter(_ b: CUDABackend, _ call: ConvolutionCall) throws
}

// MARK: - Our side: layouts, padding, bias and activation

/// Our filters are HWIO, the library's OHWI: a filter gradient is written OHWI and kept so
/// (`StorageLayout.filterOHWI`), as are the weights the fused Adam update makes from it, so a
/// training step reorders no filter; a row-major filter (a loaded model's) is reordered once per
/// buffer (`FilterLayouts`). The library pads symmetrically: an asymmetric padding
/// (TensorFlow's 'same' with an even excess) is applied with the pad kernel instead. Bias and ReLU
/// run as one kernel of ours, in place. Every library call is noted on the device
/// (`KernelDevice.libraryCall`), so a recording device counts it beside our launches.
extension ConvolutionLibrary {
  /// conv2d (x, filter[, bias]); nil unless the input, the filter and the output share one dtype
  /// the library convolves (f32, f16, bf16).
  func conv2d(_ b: CUDABackend, _ p: Conv2D, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dt = convolvedType(b, x, out) else { return nil }
    let fs = x[1].type.shape
    let (input, pad) = try padded(b, x[0], p.geometry.padding)
    let filter = try reorderToOHWI(b, x[1])
    let y = try b.output(out)
    b.device.libraryCall("cudnnConvolutionForward")
    try forward(
      b,
      ConvolutionCall(
        geometry: p.geometry, pad: pad, dtype: dt, data: input.pointer, dataShape: input.type.shape,
        filter: filter.pointer, filterShape: [fs[3], fs[0], fs[1], fs[2]], output: y.pointer, outputShape: out.shape))
    try epilogue(b, p, x, y, out)
    return y
  }

  /// conv2dBackwardData (dy, filter), which is also the transposed convolution; nil as for conv2d.
  func conv2dBackwardData(_ b: CUDABackend, _ p: Conv2DBackwardData, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dt = convolvedType(b, x, out) else { return nil }
    let (dy, fs) = (x[0], x[1].type.shape)
    let pd = p.geometry.padding
    let symmetric = pd.top == pd.bottom && pd.left == pd.right
    // With an asymmetric padding the gradient of the padded input is computed, then cropped.
    let full = symmetric
      ? out : TensorType([out.shape[0], out.shape[1] + pd.top + pd.bottom, out.shape[2] + pd.left + pd.right, out.shape[3]], out.dtype)
    let pad = symmetric ? (pd.top, pd.left) : (0, 0)
    let filter = try reorderToOHWI(b, x[1])
    let dx = try b.output(full)
    b.device.libraryCall("cudnnConvolutionBackwardData")
    try backwardData(
      b,
      ConvolutionCall(
        geometry: p.geometry, pad: pad, dtype: dt, data: dx.pointer, dataShape: full.shape,
        filter: filter.pointer, filterShape: [fs[3], fs[0], fs[1], fs[2]], output: dy.pointer, outputShape: dy.type.shape))
    if symmetric { return dx }
    let operand = DeviceOperand(pointer: dx.pointer, type: full, storage: dx)
    let crop = Slice(starts: [0, pd.top, pd.left, 0], sizes: out.shape.dims)
    return try b.slice(crop, [operand], out)
  }

  /// conv2dBackwardFilter (x, dy); nil as for conv2d.
  func conv2dBackwardFilter(_ b: CUDABackend, _ p: Conv2DBackwardFilter, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dt = convolvedType(b, x, out) else { return nil }
    let dy = x[1]
    let (input, pad) = try padded(b, x[0], p.geometry.padding)
    let (kh, kw, c, o) = (out.shape[0], out.shape[1], out.shape[2], out.shape[3])
    let dw = try b.output(out)
    b.device.libraryCall("cudnnConvolutionBackwardFilter")
    try backwardFilter(
      b,
      ConvolutionCall(
        geometry: p.geometry, pad: pad, dtype: dt, data: input.pointer, dataShape: input.type.shape,
        filter: dw.pointer, filterShape: [o, kh, kw, c], output: dy.pointer, outputShape: dy.type.shape))
    dw.layout = .filterOHWI
    return dw
  }

  /// The dtype of the first two operands and the output, when they share one the library convolves.
  func convolvedType(_ b: CUDABackend, _ x: [DeviceOperand], _ out: TensorType) -> DType? {
    b.floatType(Array(x.prefix(2)), out).flatMap { [.f32, .f16, .bf16].contains($0) ? $0 : nil }
  }

  /// The bias and activation of conv2d, applied to its output `y` in place.
  func epilogue(_ b: CUDABackend, _ p: Conv2D, _ x: [DeviceOperand], _ y: CUDAStorage, _ out: TensorType) throws {
    let n = out.shape.count
    if x.count == 3 {
      // y = act(y + bias), one pass in place (each work item reads and writes its own 16-byte vector).
      try b.device.launch(
        try KernelLibrary.handle(.biasActivation, out.dtype), count: vectorItems(n, out.dtype),
        arguments: [
          .pointer(y.pointer), .pointer(x[2].pointer), .int64(Int64(n)), .int64(Int64(out.shape[3])),
          .int32(p.activation == .relu ? 1 : 0),
        ])
    } else if p.activation == .relu {
      try b.device.launch(
        try KernelLibrary.handle(.relu, out.dtype), count: n,
        arguments: [.pointer(y.pointer), .pointer(y.pointer), .int64(Int64(n)), .double(0)])
    }
  }

  /// The filter's OHWI bytes: its own buffer when it holds them, else its reorder, made once per
  /// filter buffer (`FilterLayouts`).
  func reorderToOHWI(_ b: CUDABackend, _ f: DeviceOperand) throws -> CUDAStorage {
    if f.storage.layout == .filterOHWI { return f.storage }
    return try b.filterLayouts.ohwi(of: f) { try b.reorderedToOHWI(f) }
  }

  /// The input with an asymmetric padding applied by the pad kernel (then the library pads
  /// nothing), or the input itself and the symmetric padding for the library.
  func padded(_ b: CUDABackend, _ x: DeviceOperand, _ p: Padding2D) throws -> (DeviceOperand, (Int, Int)) {
    if p.top == p.bottom && p.left == p.right { return (x, (p.top, p.left)) }
    let s = x.type.shape
    let type = TensorType([s[0], s[1] + p.top + p.bottom, s[2] + p.left + p.right, s[3]], x.type.dtype)
    let op = Pad(before: [0, p.top, p.left, 0], after: [0, p.bottom, p.right, 0], mode: .zero)
    let storage = try b.pad(op, [x], type)
    return (DeviceOperand(pointer: storage.pointer, type: type, storage: storage), (0, 0))
  }
}
