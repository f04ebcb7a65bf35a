// MARK: - Public functions

/// Joins tensors along `axis` (default: the last, the channels of NHWC). All inputs share one
/// dtype and rank, and their shapes are equal except along `axis`; at least one input.
public func concat(_ xs: [Tensor], axis: Int = -1) throws -> Tensor {
  guard let first = xs.first else {
    throw TensorError(op: "concat", "needs at least one tensor")
  }
  guard let a = first.shape.axis(axis) else {
    throw TensorError(
      op: "concat", operands: xs.map(\.type), "axis \(axis) is out of range for rank \(first.shape.rank)")
  }
  if xs.count == 1 { return first }
  return try Tensor.apply(Concat(axis: a), xs)
}

/// The block of `x` that starts at `starts` and has extent `sizes` (one entry per axis).
public func slice(_ x: Tensor, starts: [Int], sizes: [Int]) throws -> Tensor {
  if starts.allSatisfy({ $0 == 0 }) && sizes == x.shape.dims { return x }
  return try Tensor.apply(Slice(starts: starts, sizes: sizes), [x])
}

/// The centre `height` x `width` window of an NHWC tensor [N,H,W,C] -> [N,height,width,C].
/// When the excess is odd, the extra row (column) is cut from the bottom (right): the window starts
/// at ((H - height) / 2, (W - width) / 2), rounded down, as U-Net's skip-connection crops.
public func centerCrop(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
  let s = x.shape
  guard s.rank == 4 else {
    throw TensorError(op: "centerCrop", operands: [x.type], "expects an NHWC tensor (rank 4)")
  }
  guard (0...s[1]).contains(height), (0...s[2]).contains(width) else {
    throw TensorError(
      op: "centerCrop", operands: [x.type], "cannot crop \(s[1])x\(s[2]) to \(height)x\(width): the window must fit")
  }
  return try slice(x, starts: [0, (s[1] - height) / 2, (s[2] - width) / 2, 0], sizes: [s[0], height, width, s[3]])
}

// MARK: - Strided index helpers

/// For each element of a block of `sizes` at `starts` inside `shape`, in row-major order, its flat
/// index in `shape` (the gather of slice; the scatter of its adjoint).
func blockIndices(in shape: Shape, starts: [Int], sizes: [Int]) -> [Int] {
  let st = shape.strides
  return stridedIndices(dims: sizes, strides: st, start: zip(starts, st).reduce(0) { $0 + $1.0 * $1.1 })
}

/// For each element of an index space of `dims`, in row-major order, `start` plus the dot product
/// of its multi-index with `strides`.
func stridedIndices(dims: [Int], strides: [Int], start: Int) -> [Int] {
  let count = dims.reduce(1, *)
  guard count > 0 else { return [] }
  var result = [Int](repeating: 0, count: count)
  var idx = [Int](repeating: 0, count: dims.count)
  var flat = start
  for o in 0..<count {
    result[o] = flat
    // Advance the multi-index like an odometer, keeping the flat offset in step.
    var d = dims.count - 1
    while d >= 0 {
      idx[d] += 1
      flat += strides[d]
      if idx[d] < dims[d] { break }
      flat -= strides[d] * idx[d]
      idx[d] = 0
      d -= 1
    }
  }
  return result
}

// MARK: - Concat

/// Concatenation along a normalised axis of one or more tensors of one dtype.
public struct Concat: Primitive {
  public let axis: Int
  public static let kinds: [OpKind] = [.concat]
  public var description: String { "concat(axis: \(axis))" }

  public init(axis: Int) { self.axis = axis }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    guard let first = inputs.first else {
      throw TensorError(op: "concat", "needs at least one tensor")
    }
    guard inputs.allSatisfy({ $0.dtype == first.dtype }) else {
      throw TensorError(op: "concat", operands: inputs, "operands must share one dtype; use cast(_:to:)")
    }
    guard (0..<first.shape.rank).contains(axis) else {
      throw TensorError(op: "concat", operands: inputs, "axis \(axis) is out of range for rank \(first.shape.rank)")
    }
    var dims = first.shape.dims
    dims[axis] = 0
    for t in inputs {
      let same = t.shape.rank == first.shape.rank
        && (0..<t.shape.rank).allSatisfy { $0 == axis || t.shape.dims[$0] == first.shape.dims[$0] }
      guard same else {
        throw TensorError(op: "concat", operands: inputs, "shapes must be equal except along axis \(axis)")
      }
      dims[axis] += t.shape.dims[axis]
    }
    return TensorType(Shape(dims), first.dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    var offset = 0
    return try inputs.indices.map { i -> Tensor? in
      let x = inputs[i]
      var starts = [Int](repeating: 0, count: x.shape.rank)
      starts[axis] = offset
      offset += x.shape[axis]
      return try needed[i] ? slice(g, starts: starts, sizes: x.shape.dims) : nil
    }
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    // Row-major: each input contributes one contiguous run of dims[axis] * inner elements per
    // outer index, so the output interleaves those runs.
    let outer = output.shape.dims[..<axis].reduce(1, *)
    let inner = output.shape.dims[(axis + 1)...].reduce(1, *)
    let values = inputs.map(\.doubles)
    var out: [Double] = []
    out.reserveCapacity(output.shape.count)
    for o in 0..<outer {
      for (x, v) in zip(inputs, values) {
        let run = x.shape.dims[axis] * inner
        out.append(contentsOf: v[(o * run)..<((o + 1) * run)])
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - Slice

/// A contiguous block of a tensor of any dtype: `sizes` elements from `starts` along each axis.
public struct Slice: Primitive {
  public let starts: [Int]
  public let sizes: [Int]
  public static let kinds: [OpKind] = [.slice]
  public var description: String { "slice(starts: \(starts), sizes: \(sizes))" }

  public init(starts: [Int], sizes: [Int]) {
    self.starts = starts
    self.sizes = sizes
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    let s = inputs[0].shape
    guard starts.count == s.rank, sizes.count == s.rank else {
      throw TensorError(
        op: "slice", operands: inputs,
        "starts \(starts) and sizes \(sizes) need one entry per axis (rank \(s.rank))")
    }
    for d in 0..<s.rank where starts[d] < 0 || sizes[d] < 0 || starts[d] + sizes[d] > s.dims[d] {
      throw TensorError(
        op: "slice", operands: inputs,
        "starts \(starts) and sizes \(sizes) leave the tensor along axis \(d) (size \(s.dims[d]))")
    }
    return TensorType(Shape(sizes), inputs[0].dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard needed[0] else { return [nil] }
    let x = inputs[0]
    let after = (0..<x.shape.rank).map { x.shape.dims[$0] - starts[$0] - sizes[$0] }
    return [try pad(g, before: starts, after: after, mode: .zero)]
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles
    let idx = blockIndices(in: inputs[0].shape, starts: starts, sizes: sizes)
    return HostTensor(type: output, doubles: idx.map { x[$0] })
  }
}
