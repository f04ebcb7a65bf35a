// MARK: - Public functions

/// Elementwise max(x, 0).
public func relu(_ x: Tensor) throws -> Tensor { try Tensor.apply(ReLU(), [x]) }

/// The gradient of relu given its output: dy where y > 0, else 0.
public func reluBackward(_ dy: Tensor, _ y: Tensor) throws -> Tensor { try Tensor.apply(ReLUBackward(), [dy, y]) }

// MARK: - ReLU

/// Rectified linear unit.
public struct ReLU: Primitive {
  public init() {}
  public static let kinds: [OpKind] = [.relu]

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    return TensorType(inputs[0].shape, try expectSameFloatType(inputs))
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    [try needed[0] ? reluBackward(cotangent, output) : nil]
  }

  /// The VJP reads only the output (positive where the input was).
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { true }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    HostTensor(type: output, doubles: inputs[0].doubles.map { max($0, 0) })
  }
}

// MARK: - ReLUBackward

/// Inputs dy and y = relu(x), both of one shape: dy where y > 0, else 0. Linear in dy; the mask
/// has no gradient.
public struct ReLUBackward: Primitive {
  public init() {}
  public static let kinds: [OpKind] = [.reluBackward]

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 2)
    let dtype = try expectSameFloatType(inputs)
    guard inputs[0].shape == inputs[1].shape else {
      throw TensorError(op: "reluBackward", operands: inputs, "gradient and output shapes differ")
    }
    return TensorType(inputs[0].shape, dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    [try needed[0] ? reluBackward(cotangent, inputs[1]) : nil, nil]
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    HostTensor(type: output, doubles: zip(inputs[0].doubles, inputs[1].doubles).map { $1 > 0 ? $0 : 0 })
  }
}
