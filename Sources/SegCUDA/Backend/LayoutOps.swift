import SegCore

// MARK: - Layout ops

extension CUDABackend {
  /// reshape: the same bytes in a new buffer (buffers are never shared, so none is changed under
  /// another tensor).
  func reshape(_ op: Reshape, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let y = try output(out)
    try device.copy(from: x[0].pointer, to: y.pointer, bytes: y.bytes)
    return y
  }

  /// concat: each input is copied into its block of the output (one strided copy per input).
  func concat(_ p: Concat, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let y = try output(out)
    let outStrides = out.shape.strides
    var offset = 0
    for input in x {
      let shape = input.type.shape
      let space = try StridedSpace(dims: shape.dims, strides: [shape.strides, outStrides])
        .forKernel("concat", x.map(\.type))
      if space.count > 0 {
        try copy(
          from: input.pointer, to: y.pointer, space: space, dtype: out.dtype,
          destinationBase: offset * outStrides[p.axis])
      }
      offset += shape.dims[p.axis]
    }
    return y
  }

  /// slice: a strided copy of the block, starting at the block's first element.
  func slice(_ p: Slice, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let inStrides = x[0].type.shape.strides
    let space = try StridedSpace(dims: p.sizes, strides: [inStrides, out.shape.strides]).forKernel("slice", x.map(\.type))
    let y = try output(out)
    let base = zip(p.starts, inStrides).reduce(0) { $0 + $1.0 * $1.1 }
    if space.count > 0 { try copy(from: x[0].pointer, to: y.pointer, space: space, dtype: out.dtype, sourceBase: base) }
    return y
  }

  /// pad (any dtype), zeros or reflection: `pad_b<size>`, one thread per output element.
  func pad(_ p: Pad, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    try checkRank("pad", x.map(\.type), out.shape.rank)
    let y = try output(out)
    let n = out.shape.count
    // The kernel pads 16-byte vectors when the last axis is not padded and a whole number of them
    // (as its padsVectors); a thread per vector then.
    let v = vectorLength(out.dtype)
    let vectors = (p.before.last ?? 1) == 0 && (p.after.last ?? 1) == 0 && (out.shape.dims.last ?? 1) % v == 0
    try device.launch(
      try KernelLibrary.handle(.pad, out.dtype), count: vectors ? n / v : n,
      arguments: [
        .pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(n)), .dims(out.shape.dims), .vec(p.before),
        .vec(x[0].type.shape.dims), .vec(x[0].type.shape.strides), .int64(p.mode == .reflect ? 1 : 0),
      ])
    return y
  }

  /// padBackward (the adjoint of reflect padding): a gather per interior element; nil for
  /// operands that are not of the output's floating dtype.
  func padBackward(_ p: PadBackward, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
    try checkRank("padBackward", x.map(\.type), out.shape.rank)
    let y = try output(out)
    let n = out.shape.count
    try device.launch(
      try KernelLibrary.handle(.padBackward, dtype), count: n,
      arguments: [
        .pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(n)), .dims(out.shape.dims), .vec(p.before),
        .vec(p.after), .vec(x[0].type.shape.strides),
      ])
    return y
  }
}

// MARK: - The skip connection

extension CUDABackend {
  /// cropConcat: `cropConcat_b<size>`, one thread per output element (per 16-byte vector when both
  /// channel counts are whole vectors); nil for tensors of 2^32 elements or more, which its 32-bit
  /// indices do not reach (the separate ops run then).
  func cropConcat(_ p: CropConcat, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    let (a, s) = (x[0].type.shape, x[1].type.shape)
    guard let shape = Self.cropConcatShape(a, s, counts: [out.shape.count, s.count]) else { return nil }
    let y = try output(out)
    let n = out.shape.count
    guard n > 0 else { return y }
    try device.launch(
      try KernelLibrary.handle(.cropConcat, out.dtype), count: Self.cropConcatItems(n, a[3], s[3], out.dtype),
      arguments: [.pointer(x[0].pointer), .pointer(x[1].pointer), .pointer(y.pointer), .int64(Int64(n)), .int64s(shape)])
    return y
  }

  /// cropConcatBackward: `cropConcatBackward_b<size>`, one launch writing both outputs, a thread
  /// per element (or 16-byte vector) of the two; nil where `cropConcat` declines.
  func cropConcatBackward(_ p: CropConcatBackward, _ x: [DeviceOperand], _ outs: [TensorType]) throws -> [CUDAStorage]? {
    let (a, s) = (outs[0].shape, outs[1].shape)
    guard let shape = Self.cropConcatShape(a, s, counts: [x[0].type.shape.count, a.count + s.count]) else { return nil }
    let ys = try outs.indices.map { try output(outs[$0], index: $0) }
    let n = a.count + s.count
    guard n > 0 else { return ys }
    try device.launch(
      try KernelLibrary.handle(.cropConcatBackward, x[0].type.dtype), count: Self.cropConcatItems(n, a[3], s[3], x[0].type.dtype),
      arguments: [.pointer(x[0].pointer), .pointer(ys[0].pointer), .pointer(ys[1].pointer), .int64(Int64(n)), .int64s(shape)])
    return ys
  }

  /// The kernels' shape argument (batch, h, w, ca, cs, hs, ws, oy, ox) for `a` beside the window
  /// of `skip`; nil when one of `counts` (the elements a kernel indexes) needs more than 32 bits.
  private static func cropConcatShape(_ a: Shape, _ skip: Shape, counts: [Int]) -> [Int]? {
    guard counts.allSatisfy({ $0 < 1 << 32 }) else { return nil }
    let w = CropWindow(crop: a, whole: skip)
    return [a[0], a[1], a[2], a[3], skip[3], skip[1], skip[2], w.top, w.left]
  }

  /// The threads to launch for `n` elements: one per 16-byte vector when both channel counts are
  /// whole vectors (as the kernels' `cropConcatVectors`), else one per element.
  private static func cropConcatItems(_ n: Int, _ ca: Int, _ cs: Int, _ dtype: DType) -> Int {
    let v = vectorLength(dtype)
    return ca % v == 0 && cs % v == 0 ? n / v : n
  }
}
