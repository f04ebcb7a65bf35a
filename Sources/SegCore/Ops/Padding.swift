// MARK: - Attributes

/// What fills the border that `pad` adds.
public enum PadMode: String, Sendable, Hashable {
  /// Zeros.
  case zero
  /// The interior mirrored about the edge element without repeating it, as NumPy's 'reflect'
  /// ([a,b,c] padded by 2 on each side is [c,b,a,b,c,b,a]); each pad must be smaller than its axis.
  case reflect
}

// MARK: - Public functions

/// Pads every axis of `x` (any rank and dtype) by `before[d]` and `after[d]` elements, filled as
/// `mode` says. Output dims are before[d] + x.dims[d] + after[d].
public func pad(_ x: Tensor, before: [Int], after: [Int], mode: PadMode = .zero) throws -> Tensor {
  if before.allSatisfy({ $0 == 0 }) && after.allSatisfy({ $0 == 0 }) && before.count == x.shape.rank
    && after.count == x.shape.rank
  {
    return x
  }
  return try Tensor.apply(Pad(before: before, after: after, mode: mode), [x])
}

/// The adjoint of reflect padding (its gradient): folds a gradient of the padded shape back onto the
/// interior, adding each border element to the interior element it mirrors. g of dims
/// before[d] + n[d] + after[d] -> dims n[d]; each pad must be smaller than n[d].
public func padBackward(_ g: Tensor, before: [Int], after: [Int]) throws -> Tensor {
  if before.allSatisfy({ $0 == 0 }) && after.allSatisfy({ $0 == 0 }) && before.count == g.shape.rank
    && after.count == g.shape.rank
  {
    return g
  }
  return try Tensor.apply(PadBackward(before: before, after: after), [g])
}

// MARK: - Index maps

/// Checks per-axis pads against the interior shape (nil when the pads do not fit) and returns it;
/// the error names `op` and `operands`.
@discardableResult
func checkPads(
  _ op: String, _ operands: [TensorType], interior: Shape?, rank: Int, before: [Int], after: [Int], reflect: Bool
) throws -> Shape {
  guard before.count == rank, after.count == rank else {
    throw TensorError(op: op, operands: operands, "pads \(before), \(after) need one entry per axis (rank \(rank))")
  }
  guard before.allSatisfy({ $0 >= 0 }), after.allSatisfy({ $0 >= 0 }) else {
    throw TensorError(op: op, operands: operands, "pads \(before), \(after) must not be negative")
  }
  guard let interior else {
    throw TensorError(op: op, operands: operands, "pads \(before), \(after) are larger than the padded tensor")
  }
  guard reflect else { return interior }
  for d in 0..<rank {
    let n = interior.dims[d]
    guard (before[d] == 0 || before[d] < n) && (after[d] == 0 || after[d] < n) else {
      throw TensorError(
        op: op, operands: operands,
        "reflect padding needs each pad smaller than its axis: axis \(d) has size \(n), pads (\(before[d]), \(after[d]))")
    }
  }
  return interior
}

/// For each element of the padded tensor (row-major), the flat index of the interior element it
/// holds, or -1 for a zero. Axes map independently: a reflected index is reflected per axis.
func padSourceIndices(interior: Shape, before: [Int], after: [Int], mode: PadMode) -> [Int] {
  let rank = interior.rank
  let st = interior.strides
  // Per axis, each padded coordinate's contribution to the flat interior index (nil: zero fill).
  let maps: [[Int?]] = (0..<rank).map { d in
    let n = interior.dims[d]
    return (0..<(before[d] + n + after[d])).map { j -> Int? in
      let i = j - before[d]
      if (0..<n).contains(i) { return i * st[d] }
      guard mode == .reflect else { return nil }
      return (i < 0 ? -i : 2 * (n - 1) - i) * st[d]
    }
  }
  let padded = Shape(maps.map(\.count))
  var result = [Int](repeating: -1, count: padded.count)
  var idx = [Int](repeating: 0, count: rank)
  for o in 0..<padded.count {
    var flat = 0
    var zero = false
    for d in 0..<rank {
      if let c = maps[d][idx[d]] { flat += c } else { zero = true }
    }
    if !zero { result[o] = flat }
    var d = rank - 1
    while d >= 0 {
      idx[d] += 1
      if idx[d] < padded.dims[d] { break }
      idx[d] = 0
      d -= 1
    }
  }
  return result
}

// MARK: - Pad

/// Padding of any rank and dtype, with zeros or by reflection.
public struct Pad: Primitive {
  public let before: [Int]
  public let after: [Int]
  public let mode: PadMode
  public static let kinds: [OpKind] = [.pad]
  public var description: String { "pad(before: \(before), after: \(after), mode: \(mode))" }

  public init(before: [Int], after: [Int], mode: PadMode) {
    self.before = before
    self.after = after
    self.mode = mode
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    let s = inputs[0].shape
    try checkPads("pad", inputs, interior: s, rank: s.rank, before: before, after: after, reflect: mode == .reflect)
    return TensorType(Shape((0..<s.rank).map { before[$0] + s.dims[$0] + after[$0] }), inputs[0].dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard needed[0] else { return [nil] }
    switch mode {
    case .zero: return [try slice(g, starts: before, sizes: inputs[0].shape.dims)]
    case .reflect: return [try padBackward(g, before: before, after: after)]
    }
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles
    let src = padSourceIndices(interior: inputs[0].shape, before: before, after: after, mode: mode)
    return HostTensor(type: output, doubles: src.map { $0 < 0 ? 0 : x[$0] })
  }
}

// MARK: - PadBackward

/// The adjoint of reflect padding on a floating tensor: each padded element's value is added to the
/// interior element that reflect padding copied it from.
public struct PadBackward: Primitive {
  public let before: [Int]
  public let after: [Int]
  public static let kinds: [OpKind] = [.padBackward]
  public var description: String { "padBackward(before: \(before), after: \(after))" }

  public init(before: [Int], after: [Int]) {
    self.before = before
    self.after = after
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    let dtype = try expectSameFloatType(inputs)
    let s = inputs[0].shape
    var interior: Shape? = nil
    if before.count == s.rank, after.count == s.rank {
      let dims = (0..<s.rank).map { s.dims[$0] - before[$0] - after[$0] }
      if dims.allSatisfy({ $0 >= 0 }) { interior = Shape(dims) }
    }
    let dims = try checkPads(
      "padBackward", inputs, interior: interior, rank: s.rank, before: before, after: after, reflect: true)
    return TensorType(dims, dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    [try needed[0] ? pad(g, before: before, after: after, mode: .reflect) : nil]
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let g = inputs[0].doubles
    let src = padSourceIndices(interior: output.shape, before: before, after: after, mode: .reflect)
    var out = [Double](repeating: 0, count: output.shape.count)
    for (o, i) in src.enumerated() { out[i] += g[o] }
    return HostTensor(type: output, doubles: out)
  }
}
