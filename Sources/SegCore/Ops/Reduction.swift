// MARK: - Public functions

/// Sum over `axes` (all axes when nil); the reduced axes are kept with size 1 when `keepDims`.
public func sum(_ x: Tensor, axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
  let all = Array(0..<x.shape.rank)
  var normalised: [Int] = []
  for a in axes ?? all {
    guard let n = x.shape.axis(a) else {
      throw TensorError(op: "sum", operands: [x.type], "axis \(a) is out of range for rank \(x.shape.rank)")
    }
    normalised.append(n)
  }
  return try Tensor.apply(Sum(axes: Set(normalised).sorted(), keepDims: keepDims), [x])
}

/// Mean over `axes` (all axes when nil).
public func mean(_ x: Tensor, axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
  let s = try sum(x, axes: axes, keepDims: keepDims)
  let n = x.shape.count / max(s.shape.count, 1)
  return try s * (1.0 / Double(max(n, 1)))
}

/// Sums `x` down to `shape`, the inverse of broadcasting `shape` to `x.shape` (used by gradients).
public func sum(_ x: Tensor, to shape: Shape) throws -> Tensor {
  if x.shape == shape { return x }
  guard Broadcast.shape(shape, x.shape) == x.shape else {
    throw TensorError(op: "sum", operands: [x.type], "cannot be reduced to shape \(shape)")
  }
  let lead = x.shape.rank - shape.rank
  let axes = (0..<x.shape.rank).filter { $0 < lead || (shape.dims[$0 - lead] == 1 && x.shape.dims[$0] != 1) }
  return try reshape(sum(x, axes: axes, keepDims: true), shape)
}

/// Repeats `x` along broadcast axes to `shape` (NumPy broadcasting).
public func broadcast(_ x: Tensor, to shape: Shape) throws -> Tensor {
  if x.shape == shape { return x }
  return try Tensor.apply(BroadcastTo(shape: shape), [x])
}

// MARK: - Sum

/// Sum of a floating tensor over sorted, distinct axes.
public struct Sum: Primitive {
  public let axes: [Int]
  public let keepDims: Bool
  public static let kinds: [OpKind] = [.sum]

  /// Sums over `axes`, which must be sorted and distinct.
  public init(axes: [Int], keepDims: Bool) {
    self.axes = axes
    self.keepDims = keepDims
  }
  public var description: String { "sum(axes: \(axes), keepDims: \(keepDims))" }

  /// The output shape with reduced axes kept as 1.
  func keptShape(_ input: Shape) -> Shape {
    Shape(input.dims.enumerated().map { axes.contains($0.offset) ? 1 : $0.element })
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    let dtype = try expectSameFloatType(inputs)
    let s = inputs[0].shape
    guard axes.allSatisfy({ (0..<s.rank).contains($0) }) else {
      throw TensorError(op: "sum", operands: inputs, "axes \(axes) out of range")
    }
    let kept = keptShape(s)
    return TensorType(keepDims ? kept : Shape(s.dims.enumerated().filter { !axes.contains($0.offset) }.map(\.element)), dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard needed[0] else { return [nil] }
    let x = inputs[0]
    return [try broadcast(reshape(g, keptShape(x.shape)), to: x.shape)]
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0]
    let kept = keptShape(x.shape)
    // Each input element adds into the output element it broadcasts from.
    let target = Broadcast.indices(of: kept, broadcastTo: x.shape)
    var out = [Double](repeating: 0, count: kept.count)
    for (i, v) in x.doubles.enumerated() { out[target[i]] += v }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - BroadcastTo

/// Repeats a tensor along broadcast axes to a given shape.
public struct BroadcastTo: Primitive {
  public let shape: Shape
  public static let kinds: [OpKind] = [.broadcastTo]
  public init(shape: Shape) { self.shape = shape }
  public var description: String { "broadcastTo(\(shape))" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    guard Broadcast.shape(inputs[0].shape, shape) == shape else {
      throw TensorError(op: "broadcastTo", operands: inputs, "does not broadcast to \(shape)")
    }
    return TensorType(shape, inputs[0].dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    [try needed[0] ? sum(g, to: inputs[0].shape) : nil]
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles
    let idx = Broadcast.indices(of: inputs[0].shape, broadcastTo: shape)
    return HostTensor(type: output, doubles: idx.map { x[$0] })
  }
}
