import Foundation
import SegCore

// MARK: - Adam

/// Adam as Keras implements it (the reference's optimizer): bias correction folded into the step
/// size, epsilon added to sqrt(v). State in fp32, one (m, v) pair per parameter. On a backend with
/// a fused update (`FusedAdamBackend`) each parameter takes one kernel; elsewhere the same
/// formula runs as ops.
public final class Adam {
  public var learningRate: Double
  public let beta1, beta2, epsilon: Double
  /// Whether each update is the fused `adamUpdate` op (tests turn it off to compare with ops).
  public var usesFusedUpdate = true
  /// The step scalar Adam's bias-corrected step size is marked as (`markingStepScalar`), so that a
  /// compiled update takes each step's value, and a learning-rate schedule's.
  public static let stepSizeScalar = "stepSize"
  /// Number of updates applied so far.
  public private(set) var step = 0
  /// First and second moments, by parameter name.
  public private(set) var moments: [String: (m: Tensor, v: Tensor)] = [:]

  public init(learningRate: Double = 1e-4, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-7) {
    self.learningRate = learningRate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
  }

  /// Applies one update: `gradients[i]` is the gradient of `parameters[i]`.
  public func update(_ parameters: [Parameter], gradients: [Tensor]) throws {
    step += 1
    let t = Double(step)
    let stepSize = learningRate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
    let constants = AdamConstants(beta1: beta1, beta2: beta2, epsilon: epsilon, stepSize: stepSize)
    try withoutGradients {
      for (p, g) in zip(parameters, gradients) {
        let (m0, v0) = try moments[p.name] ?? (zeros(like: p.value), zeros(like: p.value))
        // The fused op takes f32 master weights; an f64 model (gradient checks) runs the ops.
        if usesFusedUpdate, p.value.dtype == .f32 {
          let fused = try markingStepScalar(Self.stepSizeScalar, .adamStepSize) {
            try adamUpdate(parameter: p.value, m: m0, v: v0, gradient: g, constants)
          }
          (p.value, moments[p.name]) = (fused.parameter, (fused.m, fused.v))
          continue
        }
        let m = try m0 * beta1 + g * (1 - beta1)
        let v = try v0 * beta2 + g * g * (1 - beta2)
        let direction = try m / (sqrt(v) + epsilon)
        let change = try markingStepScalar(Self.stepSizeScalar, .mulScalar) { try direction * stepSize }
        p.value = try (p.value - change).detached()
        moments[p.name] = (m.detached(), v.detached())
      }
    }
  }

  /// A training step's whole update as one op (`multiTensorAdam`, for a backend whose
  /// `multiTensorOptimizer` is set): `gradients` (scaled by 1 / `unscale`) are unscaled and get
  /// `weightDecay * p` added, then Adam runs on every parameter. Returns the step's summary,
  /// [crossEntropy, dice, L2 penalty, inf/NaN gradient elements], read in one download, the
  /// step's only host read. With `skipNonFinite`, a step whose count is not 0 changes nothing,
  /// on the device and here (neither the parameters, the moments nor the step count).
  public func updateAll(
    _ parameters: [Parameter], gradients: [Tensor], crossEntropy: Tensor, dice: Tensor, unscale: Double,
    weightDecay: Double, skipNonFinite: Bool
  ) throws -> [Float] {
    let t = Double(step + 1)
    let stepSize = learningRate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
    let constants = AdamConstants(beta1: beta1, beta2: beta2, epsilon: epsilon, stepSize: stepSize)
    return try withoutGradients {
      let state = try parameters.map { p in try moments[p.name] ?? (zeros(like: p.value), zeros(like: p.value)) }
      let r = try multiTensorAdam(
        crossEntropy: crossEntropy, dice: dice, parameters: parameters.map(\.value), m: state.map(\.0),
        v: state.map(\.1), gradients: gradients, constants, unscale: unscale, weightDecay: weightDecay,
        skipNonFinite: skipNonFinite)
      let summary = try r.summary.host().floats
      if skipNonFinite, summary[3] != 0 { return summary }
      step += 1
      for (i, p) in parameters.enumerated() {
        p.value = r.parameters[i]
        moments[p.name] = (r.m[i], r.v[i])
      }
      return summary
    }
  }

  /// Restores the state saved by a checkpoint.
  public func restore(step: Int, moments: [String: (m: Tensor, v: Tensor)]) {
    self.step = step
    self.moments = moments
  }

  private func zeros(like t: Tensor) throws -> Tensor {
    try Tensor(repeating: 0, shape: t.shape, dtype: t.dtype, on: t.backend)
  }
}
