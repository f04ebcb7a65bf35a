import SegCore

// MARK: - Reductions, broadcasting and softmax

extension CUDABackend {
  /// sum over axes. A sum over the rows of row-major [batches, rows, cols] blocks (a bias
  /// gradient, a sum of everything, a per-image sum over the pixels) is one `sumRows` launch; any
  /// other is summed in chunks by separate threads into a scratch buffer (f32, f64 for f64), the
  /// chunks' sums again in chunks while many remain, then added in order. Either way the order
  /// never depends on timing, so results are the same run after run. Nil for an operand that is
  /// not of the output's floating dtype.
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
    if redCount > 0, let (batches, cols) = Self.rowBlocks(kept: kept, reduced: reduced),
      batches * ((cols + 31) / 32) <= ReductionCounters.capacity
    {
      try sumRows(x[0].pointer, into: y, dtype: dtype, partialType: partialType, batches: batches, rows: redCount, cols: cols)
      return y
    }
    // Chunks of at least 64 elements, enough of them (about a million threads) to keep the loads
    // in flight when the output is small.
    // A single chunk per output in the output's own dtype (f32, f64) is the sum itself: written
    // straight into the output, with no finishing pass.
    var (partial, rows) = try sumChunks(
      x[0].pointer, dtype: dtype, into: partialType, outCount: outCount, redCount: redCount, chunkMinimum: 64,
      kept: kept.dims, keptStrides: kept.strides[0], reduced: reduced.dims, reducedStrides: reduced.strides[0],
      singleChunkInto: dtype == partialType ? y : nil)
    if partial === y { return y }
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

  /// (batches, cols) when element (b, r, m) of the merged spaces is at (b * rows + r) * cols + m:
  /// the kept axes a contiguous run of columns (or none) after a batch axis (or none), the
  /// reduced ones the rows between them.
  static func rowBlocks(kept: StridedSpace, reduced: StridedSpace) -> (batches: Int, cols: Int)? {
    var dims = kept.dims, keptStrides = kept.strides[0]
    var cols = 1
    if let last = keptStrides.last, last == 1 {
      cols = dims.removeLast()
      keptStrides.removeLast()
    }
    guard reduced.dims.isEmpty || (reduced.dims.count == 1 && reduced.strides[0] == [cols]) else { return nil }
    if dims.isEmpty { return (1, cols) }
    guard dims.count == 1, keptStrides == [reduced.count * cols] else { return nil }
    return (dims[0], cols)
  }

  /// One `sumRows` launch: out[b * cols + m] = the sum over r of x[(b * rows + r) * cols + m].
  /// Slabs of at least 256 rows, enough tiles times slabs (about 2,048 blocks of work) to keep a
  /// GPU's loads in flight while the finishing block of each tile adds at most a few thousand
  /// partial sums.
  private func sumRows(
    _ x: UInt64, into y: CUDAStorage, dtype: DType, partialType: DType, batches: Int, rows: Int, cols: Int
  ) throws {
    let tiles = batches * ((cols + 31) / 32)
    let slabs = max(1, min((rows + 255) / 256, max(1, 2048 / tiles)))
    let slabRows = (rows + slabs - 1) / slabs
    let partial = try output(TensorType([slabs * batches * cols], partialType))
    try device.launch(
      try KernelLibrary.handle(.sumRows, dtype), count: tiles * slabs * GPUKernelDevice.threads,
      arguments: [
        .pointer(x), .pointer(partial.pointer), .pointer(y.pointer), .pointer(try reductionCounters.pointer()),
        .int64(Int64(batches)), .int64(Int64(rows)), .int64(Int64(cols)), .int64(Int64(slabs)), .int64(Int64(slabRows)),
      ])
  }

  /// One pass of `sumPartial`: the reduced elements of each output, in chunks of at least
  /// `chunkMinimum`, summed into a new [chunks, outCount] buffer of `partialType` (`destination`
  /// when there is one chunk and it is given).
  private func sumChunks(
    _ source: UInt64, dtype: DType, into partialType: DType, outCount: Int, redCount: Int, chunkMinimum: Int,
    kept: [Int], keptStrides: [Int], reduced: [Int], reducedStrides: [Int], singleChunkInto destination: CUDAStorage? = nil
  ) throws -> (CUDAStorage, rows: Int) {
    let chunks = max(1, min((redCount + chunkMinimum - 1) / chunkMinimum, max(1, (1 << 20) / outCount)))
    let chunk = max(1, (redCount + chunks - 1) / chunks)
    let used = max(1, (redCount + chunk - 1) / chunk)
    let partial = try used == 1 ? destination ?? output(TensorType([outCount], partialType)) : output(TensorType([used * outCount], partialType))
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
