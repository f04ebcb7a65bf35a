import SegCore

// MARK: - Dynamic loss scaling

/// TensorFlow's dynamic loss scale, as the reference's AMP uses it: the loss's cotangent is
/// multiplied by `scale` so that small f16 gradients do not flush to zero; after `growthInterval`
/// consecutive steps with finite gradients the scale doubles; on any inf or NaN gradient the step is
/// skipped and the scale halves (not below 1). Scales are powers of two, so scaling and unscaling
/// are exact in f32.
public struct LossScaler: Sendable, Equatable {
  /// The reference's initial scale, 2^15.
  public static let defaultInitialScale = 32768.0
  /// The reference's growth interval: finite steps before the scale doubles.
  public static let defaultGrowthInterval = 2000
  /// The smallest scale: halving stops here, as TensorFlow's.
  public static let minimumScale = 1.0

  /// The current scale.
  public private(set) var scale: Double
  /// Consecutive finite steps since the scale last changed (the growth counter).
  public private(set) var goodSteps = 0
  /// Steps skipped because a gradient was inf or NaN, over the whole run.
  public private(set) var skippedSteps = 0
  /// Finite steps after which the scale doubles.
  public let growthInterval: Int

  /// A scaler at `initialScale` (a power of two) that doubles after `growthInterval` finite steps.
  public init(initialScale: Double = LossScaler.defaultInitialScale, growthInterval: Int = LossScaler.defaultGrowthInterval) {
    scale = initialScale
    self.growthInterval = max(growthInterval, 1)
  }

  /// What a checkpoint keeps of a scaler: the scale and the two counters.
  public struct State: Sendable, Equatable {
    public var scale: Double
    public var goodSteps: Int
    public var skippedSteps: Int
    public init(scale: Double, goodSteps: Int, skippedSteps: Int) {
      (self.scale, self.goodSteps, self.skippedSteps) = (scale, goodSteps, skippedSteps)
    }
  }

  /// The scale and counters, for a checkpoint.
  public var state: State { State(scale: scale, goodSteps: goodSteps, skippedSteps: skippedSteps) }

  /// The same growth interval with a saved state.
  public func restored(_ state: State) -> LossScaler {
    var s = self
    (s.scale, s.goodSteps, s.skippedSteps) = (state.scale, state.goodSteps, state.skippedSteps)
    return s
  }

  /// `update(gradientsFinite:)` for the update that would be step `step`, refusing to go on when
  /// its gradients are inf or NaN even at the smallest scale: no scale can save such a step.
  public mutating func decide(gradientsFinite finite: Bool, step: Int, computeType: DType) throws -> Bool {
    if !finite, scale <= LossScaler.minimumScale { throw Self.overflowError(step: step, scale: scale, computeType: computeType) }
    return update(gradientsFinite: finite)
  }

  /// The error of a step whose gradients are inf or NaN at `scale`, the minimum: no scale can save it.
  static func overflowError(step: Int, scale: Double, computeType: DType) -> SettingError {
    SettingError(
      .precision,
      "at step \(step) the gradients are inf or NaN even at loss scale \(Int(scale)); the forward pass overflows in \(computeType) or the batch holds inf/NaN (try \(Setting.precision) bf16 or fp32)")
  }

  /// Records one step's outcome and returns whether its update is to be applied: a finite step
  /// counts toward growth (doubling the scale after `growthInterval` of them, unless f32 could not
  /// hold the result); a non-finite one is skipped, halves the scale and restarts the count.
  public mutating func update(gradientsFinite: Bool) -> Bool {
    guard gradientsFinite else {
      scale = max(scale / 2, LossScaler.minimumScale)
      goodSteps = 0
      skippedSteps += 1
      return false
    }
    goodSteps += 1
    if goodSteps >= growthInterval {
      if Float(scale * 2).isFinite { scale *= 2 }
      goodSteps = 0
    }
    return true
  }

  // MARK: - Checking gradients

  /// True when every element of every tensor is finite, with one download: the sum of the
  /// per-tensor sums is inf or NaN whenever any element is (inf + -inf gives NaN). A sum that
  /// overflows f32 from finite elements also reads as non-finite, which a gradient that large
  /// deserves anyway.
  public static func allFinite(_ tensors: [Tensor]) throws -> Bool {
    guard let first = tensors.first else { return true }
    return try withoutGradients {
      var total = try sum(first)
      for t in tensors.dropFirst() { total = try total + sum(t) }
      return try total.item().isFinite
    }
  }
}
