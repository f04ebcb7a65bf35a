// MARK: - Public function

/// Adam's hyper-parameters as the fused step takes them: the learning rate, not the step size,
/// since the bias correction's t is the device's count (`StepState.appliedSteps`).
public struct AdamHyperparameters: Sendable, Equatable {
  public let learningRate, beta1, beta2, epsilon: Double
  public init(learningRate: Double, beta1: Double, beta2: Double, epsilon: Double) {
    (self.learningRate, self.beta1, self.beta2, self.epsilon) = (learningRate, beta1, beta2, epsilon)
  }
}

/// A training step's whole optimizer update as one op, deciding on the device: for every
/// parameter i, the data gradient g_i is unscaled by the state's loss scale and weight decay
/// added (in f32, in this order: `g * (1 / scale) + p * weightDecay`, the multiply skipped when
/// the scale is 1), then Adam's update (`adamUpdate`'s formula, with the step size of update
/// t = the state's applied count + 1) gives p'_i, m'_i, v'_i. With `growthInterval` > 0 (loss
/// scaling), a step whose gradients hold an inf or NaN element returns every p, m and v
/// unchanged. `state` (f32 [`StepState.count`]) comes out as `StepState.next` makes it: the
/// scaler's decision, the applied count, the step's losses, L2 value and inf/NaN count, and the
/// window's sums, so the host reads nothing to go on and one tensor when it wants to know.
/// Parameters, m and v are f32; gradients f32, f16 or bf16 (one dtype for all); `crossEntropy`
/// and `dice` f32 with one element each. With `halfCopy` (f16 or bf16), `halves` are the new
/// parameters cast to it (what a mixed-precision forward pass reads, as apex's multi-tensor Adam
/// writes them), else empty.
public func multiTensorAdam(
  crossEntropy: Tensor, dice: Tensor, state: Tensor, parameters: [Tensor], m: [Tensor], v: [Tensor], gradients: [Tensor],
  _ hyper: AdamHyperparameters, weightDecay: Double, growthInterval: Int, halfCopy: DType? = nil
) throws -> (parameters: [Tensor], m: [Tensor], v: [Tensor], state: Tensor, halves: [Tensor]) {
  let n = parameters.count
  let op = MultiTensorAdam(hyper, tensors: n, weightDecay: weightDecay, growthInterval: growthInterval, halfCopy: halfCopy)
  let out = try Tensor.applyOutputs(op, [crossEntropy, dice, state] + parameters + m + v + gradients)
  return (Array(out[0..<n]), Array(out[n..<2 * n]), Array(out[2 * n..<3 * n]), out[3 * n], Array(out[(3 * n + 1)...]))
}

// MARK: - MultiTensorAdam

/// The fused optimizer step (`multiTensorAdam`): inputs crossEntropy, dice, the state, then n
/// parameters, n first moments, n second moments and n gradients; outputs n parameters, n m, n v
/// (f32, the parameters' shapes), the new state, then with `halfCopy` n parameters in that dtype.
/// Not differentiable.
public struct MultiTensorAdam: OptimizerUpdate {
  public let hyper: AdamHyperparameters
  /// The number of parameters n.
  public let tensors: Int
  public let weightDecay: Double
  /// Finite steps after which the loss scale doubles; 0 when the loss is not scaled (no step is
  /// skipped and the state's scale, 1 for an unscaled loss, is left as it is).
  public let growthInterval: Int
  /// The half dtype (f16 or bf16) the new parameters are also written in, or nil.
  public let halfCopy: DType?

  public init(_ hyper: AdamHyperparameters, tensors: Int, weightDecay: Double, growthInterval: Int, halfCopy: DType? = nil) {
    (self.hyper, self.tensors, self.weightDecay) = (hyper, tensors, weightDecay)
    (self.growthInterval, self.halfCopy) = (max(growthInterval, 0), halfCopy)
  }

  public static let kinds: [OpKind] = [.multiTensorAdam]

  public var description: String { "multiTensorAdam(\(tensors) tensors)" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType { try outputTypes(inputs)[0] }

  public func outputTypes(_ inputs: [TensorType]) throws -> [TensorType] {
    try expectOperands(inputs, 3 + 4 * tensors)
    guard tensors > 0 else { throw TensorError(op: kind.rawValue, operands: inputs, "needs at least one parameter") }
    guard inputs[0...1].allSatisfy({ $0.dtype == .f32 && $0.shape.count == 1 }) else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the loss terms must be f32 with one element each")
    }
    guard inputs[2] == TensorType([StepState.count], .f32) else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the state must be f32 [\(StepState.count)] (StepState)")
    }
    let n = tensors
    if let h = halfCopy, h != .f16 && h != .bf16 {
      throw TensorError(op: kind.rawValue, operands: inputs, "the half copy of the parameters must be f16 or bf16, not \(h)")
    }
    var states: [TensorType] = []
    for i in 0..<n {
      let state = TensorType(inputs[3 + i].shape, .f32)
      let (p, m, v, g) = (inputs[3 + i], inputs[3 + n + i], inputs[3 + 2 * n + i], inputs[3 + 3 * n + i])
      guard [p, m, v].allSatisfy({ $0 == state }), g.shape == state.shape, g.dtype == inputs[3 + 3 * n].dtype,
        [DType.f32, .f16, .bf16].contains(g.dtype)
      else {
        throw TensorError(
          op: kind.rawValue, operands: inputs,
          "parameter \(i): p, m and v must be f32 of one shape, the gradient of that shape in f32, f16 or bf16 (one dtype for all)")
      }
      states.append(state)
    }
    let halves = halfCopy.map { h in states.map { TensorType($0.shape, h) } } ?? []
    return states + states + states + [TensorType([StepState.count], .f32)] + halves
  }

  /// The formula in f32, one rounding per operation as documented; the sum of squares in Double.
  public func referenceOutputs(_ inputs: [HostTensor], outputs: [TensorType]) throws -> [HostTensor] {
    let n = tensors
    let (beta1, beta2) = (Float(hyper.beta1), Float(hyper.beta2))
    let (oneMinusBeta1, oneMinusBeta2) = (Float(1 - hyper.beta1), Float(1 - hyper.beta2))
    let (epsilon, decay) = (Float(hyper.epsilon), Float(weightDecay))
    var squares = 0.0, bad = 0
    for i in 0..<n {
      for x in inputs[3 + i].floats as [Float] { squares += Double(x) * Double(x) }
      bad += (inputs[3 + 3 * n + i].floats as [Float]).filter { !$0.isFinite }.count
    }
    let state = StepState.next(
      inputs[2].floats, crossEntropy: inputs[0].floats[0], dice: inputs[1].floats[0], penalty: Float(weightDecay * squares / 2),
      nonFinite: Float(bad), growthInterval: growthInterval, learningRate: hyper.learningRate, beta1: hyper.beta1, beta2: hyper.beta2)
    let skip = state[StepState.applied] == 0
    let (scale, stepSize) = (1 / state[StepState.usedScale], state[StepState.stepSize])
    var (ps, ms, vs): ([HostTensor], [HostTensor], [HostTensor]) = ([], [], [])
    for i in 0..<n {
      let (p, m, v, g): ([Float], [Float], [Float], [Float]) = (
        inputs[3 + i].floats, inputs[3 + n + i].floats, inputs[3 + 2 * n + i].floats, inputs[3 + 3 * n + i].floats
      )
      var (p1, m1, v1) = (p, m, v)
      if !skip {
        for j in p.indices {
          let gj = (scale == 1 ? g[j] : g[j] * scale) + p[j] * decay
          m1[j] = m[j] * beta1 + gj * oneMinusBeta1
          v1[j] = v[j] * beta2 + gj * gj * oneMinusBeta2
          p1[j] = p[j] - m1[j] / (v1[j].squareRoot() + epsilon) * stepSize
        }
      }
      let shape = outputs[i].shape
      ps.append(try HostTensor(shape: shape, floats: p1))
      ms.append(try HostTensor(shape: shape, floats: m1))
      vs.append(try HostTensor(shape: shape, floats: v1))
    }
    // The half copies as the cast op rounds them.
    let halves = try halfCopy.map { h in try ps.map { try Cast(dtype: h).reference([$0], output: TensorType($0.shape, h)) } } ?? []
    return ps + ms + vs + [try HostTensor(shape: [StepState.count], floats: state)] + halves
  }
}
