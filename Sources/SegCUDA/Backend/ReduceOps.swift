import SegCore

// MARK: - Reductions, broadcasting and softmax

extension CUDABackend {
  /// sum over axes: chunks of the reduced elements are summed by separate threads into a scratch
  /// buffer (f32, f64 for f64), the chunks' sums again in chunks while many remain, then added in
  /// order. The order never depends on timing, so results are the same run after run. Nil for an
  /// operand that is not of the output's floating dtype.
  func sum(_ p: Sum, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
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
    let partialType: DType = dtype == .f64 ? .f64 : .f32
    // Chunks of at least 64 elements, enough of them (about a million threads) to keep the loads
    // in flight when the output is small (a bias gradient).
    var (partial, rows) = try sumChunks(
      x[0].pointer, dtype: dtype, into: partialType, outCount: outCount, redCount: redCount, chunkMinimum: 64,
      kept: kept.dims, keptStrides: kept.strides[0], reduced: reduced.dims, reducedStrides: reduced.strides[0])
    // The partial sums [rows, outCount] are summed in chunks of 32 rows until few remain, so the
    // last pass adds at most 32 numbers per output: one thread adding thousands serially would
    // take longer than the whole first pass.
    while rows > 32 {
      (partial, rows) = try sumChunks(
        partial.pointer, dtype: partialType, into: partialType, outCount: outCount, redCount: rows, chunkMinimum: 32,
        kept: [outCount], keptStrides: [1], reduced: [rows], reducedStrides: [outCount])
    }
    try device.launch(
      try KernelLibrary.handle(.sumFinish, dtype), count: outCount,
      arguments: [.pointer(partial.pointer), .pointer(y.pointer), .int64(Int64(outCount)), .int64(Int64(rows))])
    return y
  }

  /// One pass of `sumPartial`: the reduced elements of each output, in chunks of at least
  /// `chunkMinimum`, summed into a new [chunks, outCount] buffer of `partialType`.
  private func sumChunks(
    _ source: UInt64, dtype: DType, into partialType: DType, outCount: Int, redCount: Int, chunkMinimum: Int,
    kept: [Int], keptStrides: [Int], reduced: [Int], reducedStrides: [Int]
  ) throws -> (CUDAStorage, rows: Int) {
    let chunks = max(1, min((redCount + chunkMinimum - 1) / chunkMinimum, max(1, (1 << 20) / outCount)))
    let chunk = max(1, (redCount + chunks - 1) / chunks)
    let used = max(1, (redCount + chunk - 1) / chunk)
    let partial = try output(TensorType([used * outCount], partialType))
    try device.launch(
      try KernelLibrary.handle(.sumPartial, dtype), count: outCount * used,
      arguments: [
        .pointer(source), .pointer(partial.pointer), .int64(Int64(outCount)), .int64(Int64(used)),
        .int64(Int64(chunk)), .int64(Int64(redCount)), .dims(kept), .vec(keptStrides),
        .dims(reduced), .vec(reducedStrides),
      ])
    return (partial, used)
  }

  /// broadcastTo (any dtype): a strided copy that reads the input with stride 0 along broadcast axes.
  func broadcastTo(_ op: BroadcastTo, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let shape = out.shape
    let space = try StridedSpace(
      dims: shape.dims, strides: [Broadcast.strides(of: x[0].type.shape, broadcastTo: shape), shape.strides]
    ).forKernel("broadcastTo", x.map(\.type))
    let y = try output(out)
    try copy(from: x[0].pointer, to: y.pointer, space: space, dtype: out.dtype)
    return y
  }

  /// Rows of at least this many elements are reduced by a block each (`softmaxBlock`).
  static let blockRowLength = 128

  /// softmax and logSoftmax over the last axis: one thread per row, or a block per long row; nil
  /// for an operand that is not of the output's floating dtype.
  func softmax(_ op: Softmax, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
    let y = try output(out)
    let n = out.shape.dims.last ?? 1
    guard n > 0, out.shape.count > 0 else { return y }
    let rows = out.shape.count / n
    // A thread per row reads a few classes per pixel in one pass; from `blockRowLength` on, a row
    // read by one thread would be serial and uncoalesced, so a block takes it (256 work items per
    // row: a block of the GPU's launch, several rows per block on a device with smaller blocks).
    let block = n >= Self.blockRowLength
    let base: KernelOp = op.log ? (block ? .logSoftmaxBlock : .logSoftmax) : (block ? .softmaxBlock : .softmax)
    try device.launch(
      try KernelLibrary.handle(base, dtype), count: block ? rows * 256 : rows,
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
    // The kernel copies 16-byte vectors when the last axis is contiguous on both sides and every
    // other stride and both bases are whole vectors (as its copiesVectors); a thread per vector then.
    let v = vectorLength(dtype)
    let last = space.dims.count - 1
    let vectors = last >= 0 && space.dims[last] % v == 0 && sourceBase % v == 0 && destinationBase % v == 0
      && space.strides.allSatisfy { s in s[last] == 1 && s[..<last].allSatisfy { $0 % v == 0 } }
    try device.launch(
      try KernelLibrary.handle(.copy, dtype), count: vectors ? n / v : n,
      arguments: [
        .pointer(source), .pointer(destination), .int64(Int64(n)), .dims(space.dims), .vec(space.strides[0]),
        .int64(Int64(sourceBase)), .vec(space.strides[1]), .int64(Int64(destinationBase)),
      ])
  }
}
