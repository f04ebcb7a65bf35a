import Foundation

// MARK: - The training step's state on the device

/// The words of the training state `multiTensorAdam` reads and writes (f32 [`StepState.count`]),
/// so that a step, skipped or applied, needs nothing from the host and the host reads it only
/// when it wants to (a logging step, a checkpoint). Counts are exact up to 2^24.
/// - the loss scaler: the scale the next step seeds its backward pass with, consecutive finite
///   steps, skipped steps over the run, skipped steps in a row, and steps whose gradients were
///   inf or NaN at the minimum scale (a run cannot go on from those);
/// - Adam's applied updates (its bias correction's t - 1);
/// - the last step: its cross-entropy, Dice loss, L2 value, inf/NaN gradient count, the scale and
///   step size it used and whether it was applied (1) or skipped (0);
/// - the window: sums of the cross-entropy, Dice loss and total over the applied steps since the
///   host last cleared them, and their number.
public enum StepState {
  public static let count = 20
  public static let lossScale = 0, goodSteps = 1, skippedSteps = 2, appliedSteps = 3, skippedInARow = 4
  public static let failures = 5
  public static let crossEntropy = 6, dice = 7, penalty = 8, nonFinite = 9, usedScale = 10, stepSize = 11
  public static let applied = 12
  public static let windowCrossEntropy = 13, windowDice = 14, windowTotal = 15, windowSteps = 16

  /// The smallest loss scale: halving stops here (TensorFlow's).
  public static let minimumScale: Float = 1

  /// A fresh state: `scale` (1 when the loss is not scaled), the counters given, the rest zero.
  public static func initial(scale: Double, goodSteps: Int, skippedSteps: Int, appliedSteps: Int) -> [Float] {
    var s = [Float](repeating: 0, count: count)
    (s[Self.lossScale], s[Self.goodSteps], s[Self.skippedSteps]) = (Float(scale), Float(goodSteps), Float(skippedSteps))
    (s[Self.appliedSteps], s[Self.usedScale]) = (Float(appliedSteps), Float(scale))
    return s
  }

  /// Adam's bias-corrected step size for update t: learningRate * sqrt(1 - beta2^t) / (1 - beta1^t),
  /// in Double (the kernels compute the same expression in double).
  public static func biasCorrectedStepSize(learningRate: Double, beta1: Double, beta2: Double, t: Double) -> Double {
    learningRate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
  }

  /// The state after a step with `nonFinite` inf/NaN gradient elements and the given losses: with
  /// `growthInterval` > 0 (loss scaling) a non-finite step is skipped and halves the scale (not
  /// below 1), and `growthInterval` finite steps in a row double it (unless f32 cannot hold it);
  /// without, every step is applied. The one transition the kernels implement (in f32, as here).
  public static func next(
    _ s: [Float], crossEntropy: Float, dice: Float, penalty: Float, nonFinite: Float, growthInterval: Int,
    learningRate: Double, beta1: Double, beta2: Double
  ) -> [Float] {
    var n = s
    let skip = growthInterval > 0 && nonFinite != 0
    (n[Self.crossEntropy], n[Self.dice], n[Self.penalty], n[Self.nonFinite]) = (crossEntropy, dice, penalty, nonFinite)
    n[usedScale] = s[lossScale]
    n[stepSize] = Float(biasCorrectedStepSize(learningRate: learningRate, beta1: beta1, beta2: beta2, t: Double(s[appliedSteps]) + 1))
    n[applied] = skip ? 0 : 1
    if skip {
      if s[lossScale] <= minimumScale { n[failures] += 1 }
      n[lossScale] = max(s[lossScale] * 0.5, minimumScale)
      (n[goodSteps], n[skippedSteps], n[skippedInARow]) = (0, s[skippedSteps] + 1, s[skippedInARow] + 1)
      return n
    }
    (n[appliedSteps], n[skippedInARow]) = (s[appliedSteps] + 1, 0)
    if growthInterval > 0 {
      n[goodSteps] = s[goodSteps] + 1
      if n[goodSteps] >= Float(growthInterval) {
        if (s[lossScale] * 2).isFinite { n[lossScale] = s[lossScale] * 2 }
        n[goodSteps] = 0
      }
    }
    n[windowCrossEntropy] = s[windowCrossEntropy] + crossEntropy
    n[windowDice] = s[windowDice] + dice
    n[windowTotal] = s[windowTotal] + ((crossEntropy + dice) + penalty)
    n[windowSteps] = s[windowSteps] + 1
    return n
  }
}
