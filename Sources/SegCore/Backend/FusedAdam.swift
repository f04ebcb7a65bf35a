// MARK: - Fused Adam

/// The constants of one Adam update in Keras's form (the reference's optimizer): bias correction
/// folded into `stepSize`, `epsilon` added to sqrt(v).
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

/// A backend that applies one Adam update to one parameter in a single pass over memory:
///
///     m' = m * beta1 + g * (1 - beta1);  v' = v * beta2 + g * g * (1 - beta2)
///     p' = p - m' / (sqrt(v') + epsilon) * stepSize
///
/// computed in f32 in exactly this order, which is also the order of SegNN's Adam written with
/// ops, so both give the same values. Written as ops the update is about a dozen kernels and as
/// many passes over the parameters; fused it is one.
public protocol FusedAdamBackend: Backend {
  /// New buffers for p', m' and v' (f32, the parameter's shape; the inputs are not modified), from
  /// f32 `parameter`, `m`, `v` and `gradient` of the same shape; nil when this backend has no
  /// kernel for these operands (e.g. the gradient's dtype), and the caller uses ops instead.
  func adamUpdate(
    parameter: Operand, m: Operand, v: Operand, gradient: Operand, _ constants: AdamConstants
  ) throws -> (parameter: any DeviceStorage, m: any DeviceStorage, v: any DeviceStorage)?
}
