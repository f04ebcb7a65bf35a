// MARK: - Public functions

/// Elementwise a + b with broadcasting.
public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Tensor.apply(Binary(.add), [a, b]) }
/// Elementwise a - b with broadcasting.
public func sub(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Tensor.apply(Binary(.sub), [a, b]) }
/// Elementwise a * b with broadcasting.
public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Tensor.apply(Binary(.mul), [a, b]) }
/// Elementwise a / b with broadcasting.
public func div(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Tensor.apply(Binary(.div), [a, b]) }

extension Tensor {
  public static func + (a: Tensor, b: Tensor) throws -> Tensor { try add(a, b) }
  public static func - (a: Tensor, b: Tensor) throws -> Tensor { try sub(a, b) }
  public static func * (a: Tensor, b: Tensor) throws -> Tensor { try mul(a, b) }
  public static func / (a: Tensor, b: Tensor) throws -> Tensor { try div(a, b) }
}

// MARK: - Primitive

/// Elementwise binary arithmetic on two floating tensors of one dtype, NumPy broadcasting.
public struct Binary: Primitive {
  /// Which arithmetic.
  public enum Function: Sendable { case add, sub, mul, div }
  public let function: Function

  public init(_ function: Function) { self.function = function }

  public static let kinds: [OpKind] = [.add, .sub, .mul, .div]

  public var kind: OpKind {
    switch function {
    case .add: return .add
    case .sub: return .sub
    case .mul: return .mul
    case .div: return .div
    }
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 2)
    let dtype = try expectSameFloatType(inputs)
    guard let shape = Broadcast.shape(inputs[0].shape, inputs[1].shape) else {
      throw TensorError(op: kind.rawValue, operands: inputs, "shapes do not broadcast")
    }
    return TensorType(shape, dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    let (a, b) = (inputs[0], inputs[1])
    switch function {
    case .add: return [try needed[0] ? sum(g, to: a.shape) : nil, try needed[1] ? sum(g, to: b.shape) : nil]
    case .sub: return [try needed[0] ? sum(g, to: a.shape) : nil, try needed[1] ? sum(neg(g), to: b.shape) : nil]
    case .mul: return [try needed[0] ? sum(g * b, to: a.shape) : nil, try needed[1] ? sum(g * a, to: b.shape) : nil]
    case .div:
      // Both cotangents start from g / b: made once, and only when one of them is needed.
      guard needed[0] || needed[1] else { return [nil, nil] }
      let ga = try g / b
      return [try needed[0] ? sum(ga, to: a.shape) : nil, try needed[1] ? sum(neg(ga * output), to: b.shape) : nil]
    }
  }

  /// add and sub need only the shapes; mul reads both inputs, div both and its output.
  public func vjpReads(input index: Int) -> Bool { function == .mul || function == .div }
  public var vjpReadsOutput: Bool { function == .div }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let a = inputs[0].doubles, b = inputs[1].doubles
    let ia = Broadcast.indices(of: inputs[0].shape, broadcastTo: output.shape)
    let ib = Broadcast.indices(of: inputs[1].shape, broadcastTo: output.shape)
    var out = [Double](repeating: 0, count: output.shape.count)
    switch function {
    case .add: for i in out.indices { out[i] = a[ia[i]] + b[ib[i]] }
    case .sub: for i in out.indices { out[i] = a[ia[i]] - b[ib[i]] }
    case .mul: for i in out.indices { out[i] = a[ia[i]] * b[ib[i]] }
    case .div: for i in out.indices { out[i] = a[ia[i]] / b[ib[i]] }
    }
    return HostTensor(type: output, doubles: out)
  }
}
