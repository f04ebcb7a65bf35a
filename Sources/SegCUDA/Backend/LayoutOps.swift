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
