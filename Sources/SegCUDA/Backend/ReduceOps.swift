import SegCore

// MARK: - Reductions, broadcasting and softmax

extension CUDABackend {
  /// sum over axes, in two passes: chunks of the reduced elements are summed by separate threads
  /// into a scratch buffer (f32, f64 for f64), then the chunks are added in order. The order never
  /// depends on timing, so results are the same run after run.
  func sum(_ op: any Primitive, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let dtype = try floatType(op, x, out)
    guard let p = op as? Sum else { throw TensorError(op: "sum", "the CUDA kernel was given \(type(of: op))") }
    let input = x[0].type.shape
    let strides = input.strides
    let keptAxes = input.dims.indices.filter { !p.axes.contains($0) }
    let operands = x.map(\.type)
    let kept = try StridedSpace(dims: keptAxes.map { input.dims[$0] }, strides: [keptAxes.map { strides[$0] }])
      .forKernel("sum", operands)
    let reduced = try StridedSpace(dims: p.axes.map { input.dims[$0] }, strides: [p.axes.map { strides[$0] }])
      .forKernel("sum", operands)
    let y = try output(out)
    let outCount = kept.count, redCount = reduced.count
    guard outCount > 0 else { return y }
    // Enough chunks to keep the GPU busy when the output is small (a bias gradient), each of at
    // least 64 elements.
    let chunks = max(1, min((redCount + 63) / 64, max(1, 65_536 / outCount)))
    let chunk = max(1, (redCount + chunks - 1) / chunks)
    let used = max(1, (redCount + chunk - 1) / chunk)
    let partial = try output(TensorType([used * outCount], dtype == .f64 ? .f64 : .f32))
    try device.launch(
      KernelNames.name("sumPartial", dtype), count: outCount * used,
      arguments: [
        .pointer(x[0].pointer), .pointer(partial.pointer), .int64(Int64(outCount)), .int64(Int64(used)),
        .int64(Int64(chunk)), .int64(Int64(redCount)), .dims(kept.dims), .vec(kept.strides[0]),
        .dims(reduced.dims), .vec(reduced.strides[0]),
      ])
    try device.launch(
      KernelNames.name("sumFinish", dtype), count: outCount,
      arguments: [.pointer(partial.pointer), .pointer(y.pointer), .int64(Int64(outCount)), .int64(Int64(used))])
    return y
  }

  /// broadcastTo (any dtype): a strided copy that reads the input with stride 0 along broadcast axes.
  func broadcastTo(_ op: any Primitive, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let shape = out.shape
    let space = try StridedSpace(
      dims: shape.dims, strides: [Broadcast.strides(of: x[0].type.shape, broadcastTo: shape), shape.strides]
    ).forKernel("broadcastTo", x.map(\.type))
    let y = try output(out)
    try copy(from: x[0].pointer, to: y.pointer, space: space, dtype: out.dtype)
    return y
  }

  /// softmax and logSoftmax over the last axis: one thread per row.
  func softmax(_ op: any Primitive, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let dtype = try floatType(op, x, out)
    let y = try output(out)
    let n = out.shape.dims.last ?? 1
    guard n > 0, out.shape.count > 0 else { return y }
    let rows = out.shape.count / n
    try device.launch(
      KernelNames.name(op.kind.rawValue, dtype), count: rows,
      arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(rows)), .int64(Int64(n))])
    return y
  }

  /// Launches `copy_b<size>` over `space`, whose first strides are the source's, second the
  /// destination's, with optional base offsets in elements.
  func copy(
    from source: UInt64, to destination: UInt64, space: StridedSpace, dtype: DType, sourceBase: Int = 0,
    destinationBase: Int = 0
  ) throws {
    let n = space.count
    try device.launch(
      "copy_b\(dtype.byteSize)", count: n,
      arguments: [
        .pointer(source), .pointer(destination), .int64(Int64(n)), .dims(space.dims), .vec(space.strides[0]),
        .int64(Int64(sourceBase)), .vec(space.strides[1]), .int64(Int64(destinationBase)),
      ])
  }
}
