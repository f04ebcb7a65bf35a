import Foundation
import SegCore

// MARK: - Adam

/// Adam as Keras implements it (the reference's optimizer): bias correction folded into the step
/// size, epsilon added to sqrt(v). State in fp32, one (m, v) pair per parameter. On a backend with
/// a fused update (`FusedAdamBackend`) each parameter takes one kernel; elsewhere the same
/// formula runs as ops; the fused whole-step update (`updateAll`) counts its updates on the device.
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
    let stepSize = StepState.biasCorrectedStepSize(learningRate: learningRate, beta1: beta1, beta2: beta2, t: t)
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

  /// The step scalar the learning rate of the fused update is marked as (`markingStepScalar`): its
  /// bias correction is the device's, from the state's applied count.
  public static let learningRateScalar = "learningRate"

  /// A training step's whole update as one op (`multiTensorAdam`, for a backend whose
  /// `multiTensorOptimizer` is set), queued with no host read: `gradients` (scaled by the state's
  /// loss scale) are unscaled and get `weightDecay * p` added, then Adam runs on every parameter
  /// with the step size of the state's applied count; with `growthInterval` > 0 a step with an
  /// inf or NaN gradient changes nothing but the state. The parameters and moments take the op's
  /// outputs either way; `step` is not advanced here: the caller sets it from the returned state
  /// (`StepState`, f32 [`StepState.count`]) when it reads it (`takeStep`).
  public func updateAll(
    _ parameters: [Parameter], gradients: [Tensor], crossEntropy: Tensor, dice: Tensor, state: Tensor,
    weightDecay: Double, growthInterval: Int
  ) throws -> Tensor {
    let hyper = AdamHyperparameters(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon)
    return try withoutGradients {
      let moments = try parameters.map { p in try self.moments[p.name] ?? (zeros(like: p.value), zeros(like: p.value)) }
      let r = try multiTensorAdam(
        crossEntropy: crossEntropy, dice: dice, state: state, parameters: parameters.map(\.value), m: moments.map(\.0),
        v: moments.map(\.1), gradients: gradients, hyper, weightDecay: weightDecay, growthInterval: growthInterval)
      for (i, p) in parameters.enumerated() {
        p.value = r.parameters[i]
        self.moments[p.name] = (r.m[i], r.v[i])
      }
      return r.state
    }
  }

  /// Sets the update count to the device's (`StepState.appliedSteps`, read by the trainer).
  public func takeStep(_ applied: Int) { step = applied }

  /// Restores the state saved by a checkpoint.
  public func restore(step: Int, moments: [String: (m: Tensor, v: Tensor)]) {
    self.step = step
    self.moments = moments
  }

  private func zeros(like t: Tensor) throws -> Tensor {
    try Tensor(repeating: 0, shape: t.shape, dtype: t.dtype, on: t.backend)
  }
}
