import SegCore

// MARK: - Elementwise ops

extension CUDABackend {
  /// add, sub, mul, div (NumPy broadcasting): `<function>_<dtype>`; nil for operands that are not
  /// of the output's floating dtype.
  func binary(_ op: Binary, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    let base: KernelOp
    switch op.function {
    case .add: base = .add
    case .sub: base = .sub
    case .mul: base = .mul
    case .div: base = .div
    }
    return try broadcastBinary(base, x, out)
  }

  /// reluBackward (dy, y): `reluBackward_<dtype>`, the binary kernel with broadcasting.
  func reluBackward(_ op: ReLUBackward, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    try broadcastBinary(.reluBackward, x, out)
  }

  /// `<base>_<dtype>` over the merged output space, each input read through its broadcast strides.
  private func broadcastBinary(_ base: KernelOp, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
    let y = try output(out)
    let shape = out.shape
    let space = try StridedSpace(
      dims: shape.dims,
      strides: [
        Broadcast.strides(of: x[0].type.shape, broadcastTo: shape),
        Broadcast.strides(of: x[1].type.shape, broadcastTo: shape), shape.strides,
      ]
    ).forKernel("\(base)", x.map(\.type))
    let n = shape.count
    // The kernel moves 16-byte vectors when both inputs are contiguous, or one is a row repeated
    // on every row (a bias); a thread per vector then.
    let (a, b) = (space.strides[0], space.strides[1])
    let vectors = space.dims.count == 1 && a == [1] && b == [1]
      || space.dims.count == 2 && space.dims[1] % vectorLength(dtype) == 0
        && (a == [space.dims[1], 1] && b == [0, 1] || a == [0, 1] && b == [space.dims[1], 1])
    try device.launch(
      try KernelLibrary.handle(base, dtype), count: vectors ? vectorItems(n, dtype) : n,
      arguments: [
        .pointer(x[0].pointer), .pointer(x[1].pointer), .pointer(y.pointer), .int64(Int64(n)), .dims(space.dims),
        .vec(space.strides[0]), .vec(space.strides[1]),
      ])
    return y
  }

  /// neg, exp, log, sqrt, addScalar and mulScalar: `<function>_<dtype>(x, out, n, c)`, c the
  /// scalar of addScalar and mulScalar (0 for the others).
  func unary(_ op: Unary, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    let (base, c): (KernelOp, Double)
    switch op.function {
    case .neg: (base, c) = (.neg, 0)
    case .exp: (base, c) = (.exp, 0)
    case .log: (base, c) = (.log, 0)
    case .sqrt: (base, c) = (.sqrt, 0)
    case .addScalar(let v): (base, c) = (.addScalar, v)
    case .mulScalar(let v): (base, c) = (.mulScalar, v)
    }
    // In a captured step the scalar is a step scalar's word in device memory (`StepScalarPlacement`).
    if base == .addScalar || base == .mulScalar, let at = StepScalarPlacement.take(base == .addScalar ? .addScalar : .mulScalar) {
      guard let dtype = floatType(x, out) else { return nil }
      let words = try cudaStorage(at.buffer, op: "\(base)")
      let y = try output(out)
      let n = out.shape.count
      try device.launch(
        try KernelLibrary.handle(base == .addScalar ? .addScalarAt : .mulScalarAt, dtype), count: vectorItems(n, dtype),
        arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(n)), .pointer(words.pointer + UInt64(8 * at.word))])
      return y
    }
    return try unaryKernel(base, c, x, out)
  }

  /// relu: `relu_<dtype>(x, out, n, 0)`.
  func relu(_ op: ReLU, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    try unaryKernel(.relu, 0, x, out)
  }

  private func unaryKernel(_ base: KernelOp, _ c: Double, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
    let y = try output(out)
    let n = out.shape.count
    try device.launch(
      try KernelLibrary.handle(base, dtype), count: vectorItems(n, dtype),
      arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(n)), .double(c)])
    return y
  }
}

// MARK: - 16-byte vectors

/// Elements of `dtype` in one 16-byte vector: what the vectorised kernels move per access.
func vectorLength(_ dtype: DType) -> Int { 16 / dtype.byteSize }

/// Work items (threads) for a vectorised kernel over n elements: one per 16-byte vector, the
/// last one also covering the scalar tail. The grid-stride loops cover any count, so this only
/// sizes the grid.
func vectorItems(_ n: Int, _ dtype: DType) -> Int { (n + vectorLength(dtype) - 1) / vectorLength(dtype) }
