// MARK: - Public functions

/// One Adam update of one parameter in Keras's form (the reference's optimizer), as one op with
/// three outputs, p', m' and v' (f32, the parameter's shape), from f32 `parameter`, `m` and `v` and
/// a `gradient` of the same shape (f32, f16 or bf16):
///
///     m' = m * beta1 + g * (1 - beta1);  v' = v * beta2 + g * g * (1 - beta2)
///     p' = p - m' / (sqrt(v') + epsilon) * stepSize
///
/// computed in f32 in exactly this order, which is also the order of the same formula written with
/// ops, so both give the same values. Written as ops the update is about a dozen kernels and as
/// many passes over the parameter; fused it is one.
public func adamUpdate(
  parameter: Tensor, m: Tensor, v: Tensor, gradient: Tensor, _ constants: AdamConstants
) throws -> (parameter: Tensor, m: Tensor, v: Tensor) {
  let out = try Tensor.applyOutputs(AdamUpdate(constants), [parameter, m, v, gradient])
  return (out[0], out[1], out[2])
}

// MARK: - Constants

/// The constants of one Adam update in Keras's form: bias correction folded into `stepSize`,
/// `epsilon` added to sqrt(v).
public struct AdamConstants: Sendable, Equatable {
  public let beta1: Double
  public let beta2: Double
  public let epsilon: Double
  /// learning rate * sqrt(1 - beta2^t) / (1 - beta1^t) at step t.
  public let stepSize: Double

  public init(beta1: Double, beta2: Double, epsilon: Double, stepSize: Double) {
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.stepSize = stepSize
  }
}

// MARK: - Optimizer updates

/// An optimizer step as one op with several outputs: it runs outside the gradient graph, so it has
/// no gradient and keeps no value alive for one; its `reference` is its first output's.
public protocol OptimizerUpdate: Primitive {}

extension OptimizerUpdate {
  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard !needed.contains(true) else {
      throw TensorError(op: kind.rawValue, "an optimizer update has no gradient; run it inside withoutGradients")
    }
    return needed.map { _ in nil }
  }

  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    try referenceOutputs(inputs, outputs: outputTypes(inputs.map(\.type)))[0]
  }
}

// MARK: - AdamUpdate

/// The fused Adam update (`adamUpdate`): inputs p, m, v (f32) and g (f32, f16 or bf16) of one
/// shape; outputs p', m', v' (f32). An optimizer step, not differentiable.
public struct AdamUpdate: OptimizerUpdate {
  public let constants: AdamConstants

  public init(_ constants: AdamConstants) { self.constants = constants }

  public static let kinds: [OpKind] = [.adamUpdate]

  public func outputType(_ inputs: [TensorType]) throws -> TensorType { try outputTypes(inputs)[0] }

  public func outputTypes(_ inputs: [TensorType]) throws -> [TensorType] {
    try expectOperands(inputs, 4)
    let state = TensorType(inputs[0].shape, .f32)
    guard inputs[0...2].allSatisfy({ $0 == state }) else {
      throw TensorError(op: kind.rawValue, operands: inputs, "parameter, m and v must be f32 tensors of one shape")
    }
    guard inputs[3].shape == state.shape, [DType.f32, .f16, .bf16].contains(inputs[3].dtype) else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the gradient must have the parameter's shape and be f32, f16 or bf16")
    }
    return [state, state, state]
  }

  /// The formula in f32, one operation at a time in the documented order: the same roundings as
  /// the formula written with ops, each of which rounds its result to f32.
  public func referenceOutputs(_ inputs: [HostTensor], outputs: [TensorType]) throws -> [HostTensor] {
    let (p, m, v, g) = (inputs[0].floats, inputs[1].floats, inputs[2].floats, inputs[3].floats)
    let (beta1, beta2) = (Float(constants.beta1), Float(constants.beta2))
    let (oneMinusBeta1, oneMinusBeta2) = (Float(1 - constants.beta1), Float(1 - constants.beta2))
    let (epsilon, stepSize) = (Float(constants.epsilon), Float(constants.stepSize))
    var (p1, m1, v1) = (p, m, v)
    for i in p.indices {
      m1[i] = m[i] * beta1 + g[i] * oneMinusBeta1
      v1[i] = v[i] * beta2 + g[i] * g[i] * oneMinusBeta2
      p1[i] = p[i] - m1[i] / (v1[i].squareRoot() + epsilon) * stepSize
    }
    return try [p1, m1, v1].map { try HostTensor(shape: outputs[0].shape, floats: $0) }
  }
}
