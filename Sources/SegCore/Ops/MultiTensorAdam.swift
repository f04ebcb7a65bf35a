// MARK: - Public function

/// A training step's whole optimizer update as one op: for every parameter i, the data gradient
/// g_i is unscaled and weight decay added (in f32, in this order: `g * unscale + p * weightDecay`,
/// the multiply skipped when `unscale` is 1), then Adam's update (`adamUpdate`'s formula) gives
/// p'_i, m'_i, v'_i. With `skipNonFinite`, a step whose gradients hold an inf or NaN element
/// returns every p, m and v unchanged (loss scaling skips it).
///
/// The last output, `summary` (f32 [4]), is what the host reads of the step, in one read:
/// [crossEntropy, dice, weightDecay * sum(p^2) / 2 over the parameters before the update,
/// the number of inf or NaN gradient elements]. Parameters, m and v are f32; gradients f32, f16
/// or bf16 (one dtype for all); `crossEntropy` and `dice` f32 with one element each. With
/// `halfCopy` (f16 or bf16), `halves` are the new parameters cast to it (what a mixed-precision
/// forward pass reads, as apex's multi-tensor Adam writes them), else empty.
public func multiTensorAdam(
  crossEntropy: Tensor, dice: Tensor, parameters: [Tensor], m: [Tensor], v: [Tensor], gradients: [Tensor],
  _ constants: AdamConstants, unscale: Double, weightDecay: Double, skipNonFinite: Bool, halfCopy: DType? = nil
) throws -> (parameters: [Tensor], m: [Tensor], v: [Tensor], summary: Tensor, halves: [Tensor]) {
  let n = parameters.count
  let op = MultiTensorAdam(
    constants, tensors: n, unscale: unscale, weightDecay: weightDecay, skipNonFinite: skipNonFinite, halfCopy: halfCopy)
  let out = try Tensor.applyOutputs(op, [crossEntropy, dice] + parameters + m + v + gradients)
  return (Array(out[0..<n]), Array(out[n..<2 * n]), Array(out[2 * n..<3 * n]), out[3 * n], Array(out[(3 * n + 1)...]))
}

// MARK: - MultiTensorAdam

/// The fused optimizer step (`multiTensorAdam`): inputs crossEntropy, dice, then n parameters, n
/// first moments, n second moments and n gradients; outputs n parameters, n m, n v (f32, the
/// parameters' shapes), the summary (f32 [4]), then with `halfCopy` n parameters in that dtype.
/// Not differentiable.
public struct MultiTensorAdam: OptimizerUpdate {
  public let constants: AdamConstants
  /// The number of parameters n.
  public let tensors: Int
  /// The factor the gradients are multiplied by first (1 / the loss scale).
  public let unscale: Double
  public let weightDecay: Double
  /// Whether a step with an inf or NaN gradient element leaves every parameter and moment as it was.
  public let skipNonFinite: Bool
  /// The half dtype (f16 or bf16) the new parameters are also written in, or nil.
  public let halfCopy: DType?

  public init(
    _ constants: AdamConstants, tensors: Int, unscale: Double, weightDecay: Double, skipNonFinite: Bool, halfCopy: DType? = nil
  ) {
    (self.constants, self.tensors, self.unscale) = (constants, tensors, unscale)
    (self.weightDecay, self.skipNonFinite, self.halfCopy) = (weightDecay, skipNonFinite, halfCopy)
  }

  public static let kinds: [OpKind] = [.multiTensorAdam]

  public var description: String { "multiTensorAdam(\(tensors) tensors)" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType { try outputTypes(inputs)[0] }

  public func outputTypes(_ inputs: [TensorType]) throws -> [TensorType] {
    try expectOperands(inputs, 2 + 4 * tensors)
    guard tensors > 0 else { throw TensorError(op: kind.rawValue, operands: inputs, "needs at least one parameter") }
    guard inputs[0...1].allSatisfy({ $0.dtype == .f32 && $0.shape.count == 1 }) else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the loss terms must be f32 with one element each")
    }
    let n = tensors
    if let h = halfCopy, h != .f16 && h != .bf16 {
      throw TensorError(op: kind.rawValue, operands: inputs, "the half copy of the parameters must be f16 or bf16, not \(h)")
    }
    var states: [TensorType] = []
    for i in 0..<n {
      let state = TensorType(inputs[2 + i].shape, .f32)
      let (p, m, v, g) = (inputs[2 + i], inputs[2 + n + i], inputs[2 + 2 * n + i], inputs[2 + 3 * n + i])
      guard [p, m, v].allSatisfy({ $0 == state }), g.shape == state.shape, g.dtype == inputs[2 + 3 * n].dtype,
        [DType.f32, .f16, .bf16].contains(g.dtype)
      else {
        throw TensorError(
          op: kind.rawValue, operands: inputs,
          "parameter \(i): p, m and v must be f32 of one shape, the gradient of that shape in f32, f16 or bf16 (one dtype for all)")
      }
      states.append(state)
    }
    let halves = halfCopy.map { h in states.map { TensorType($0.shape, h) } } ?? []
    return states + states + states + [TensorType([4], .f32)] + halves
  }

  /// The formula in f32, one rounding per operation as documented; the sum of squares in Double.
  public func referenceOutputs(_ inputs: [HostTensor], outputs: [TensorType]) throws -> [HostTensor] {
    let n = tensors
    let (beta1, beta2) = (Float(constants.beta1), Float(constants.beta2))
    let (oneMinusBeta1, oneMinusBeta2) = (Float(1 - constants.beta1), Float(1 - constants.beta2))
    let (epsilon, stepSize) = (Float(constants.epsilon), Float(constants.stepSize))
    let (scale, decay) = (Float(unscale), Float(weightDecay))
    var squares = 0.0, bad = 0
    for i in 0..<n {
      for x in inputs[2 + i].floats as [Float] { squares += Double(x) * Double(x) }
      bad += (inputs[2 + 3 * n + i].floats as [Float]).filter { !$0.isFinite }.count
    }
    let skip = skipNonFinite && bad > 0
    var (ps, ms, vs): ([HostTensor], [HostTensor], [HostTensor]) = ([], [], [])
    for i in 0..<n {
      let (p, m, v, g): ([Float], [Float], [Float], [Float]) = (
        inputs[2 + i].floats, inputs[2 + n + i].floats, inputs[2 + 2 * n + i].floats, inputs[2 + 3 * n + i].floats
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
    let summary: [Float] = [
      inputs[0].floats[0], inputs[1].floats[0], Float(weightDecay * squares / 2), Float(bad),
    ]
    // The half copies as the cast op rounds them.
    let halves = try halfCopy.map { h in try ps.map { try Cast(dtype: h).reference([$0], output: TensorType($0.shape, h)) } } ?? []
    return ps + ms + vs + [try HostTensor(shape: [4], floats: summary)] + halves
  }
}
