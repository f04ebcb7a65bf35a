import Foundation
import SegCore

// MARK: - The class-prior plateau

/// Says when a run is still on the class-prior plateau after `afterSteps` updates: its mean
/// cross-entropy over the last `window` steps is within `tolerance` (a fraction) of the entropy of
/// the training masks' class frequencies, which is what a model predicting those frequencies
/// everywhere scores. A deep U-Net without normalisation can sit there for hundreds of steps (its
/// logits start near 0 under Glorot init), so the message names what shortens it.
public final class PlateauWatch: TrainingCallback {
  /// Updates after which the run is checked, once.
  public let afterSteps: Int
  /// Steps averaged.
  public let window: Int
  /// How close to the prior's entropy, as a fraction of it, counts as on the plateau.
  public let tolerance: Double
  /// The step at which the window's mean first fell below the plateau, when it did.
  public private(set) var leftPlateauAt: Int?
  /// Whether the run was reported as stalled.
  public private(set) var reported = false
  private let say: (String) -> Void
  private let name: (Setting) -> String
  private var entropy: Double?
  private var recent: [Double] = []

  /// A watch reporting through `say`, naming settings with `name` (a command line's flags).
  public init(
    afterSteps: Int = 200, window: Int = 50, tolerance: Double = 0.05, say: @escaping (String) -> Void,
    naming name: @escaping (Setting) -> String = \.rawValue
  ) {
    (self.afterSteps, self.window, self.tolerance, self.say, self.name) = (afterSteps, max(window, 1), tolerance, say, name)
  }

  /// The entropy (nats) of class frequencies `prior`; nil when they are empty or not a distribution.
  public static func entropy(of prior: [Double]) -> Double? {
    let total = prior.reduce(0, +)
    guard !prior.isEmpty, total > 0 else { return nil }
    return -prior.filter { $0 > 0 }.map { $0 / total }.reduce(0) { $0 + $1 * Foundation.log($1) }
  }

  public func runStarted(_ run: RunContext) throws { entropy = PlateauWatch.entropy(of: run.classPrior) }

  /// Every step's cross-entropy until the check.
  public func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool {
    entropy != nil && !reported && step - loop.firstStep <= afterSteps
  }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard let h = entropy, h > 0 else { return }
    recent.append(event.metrics.crossEntropy)
    if recent.count > window { recent.removeFirst(recent.count - window) }
    let mean = recent.reduce(0, +) / Double(recent.count)
    let onPlateau = mean >= (1 - tolerance) * h
    if !onPlateau, leftPlateauAt == nil, recent.count == window { leftPlateauAt = event.step }
    guard event.step - loop.firstStep == afterSteps, onPlateau, leftPlateauAt == nil, !reported else { return }
    reported = true
    let o = loop.options
    var tries: [String] = []
    if o.weightInitializer != .he { tries.append("\(name(.weightInitializer)) he") }
    if o.headBias != .prior { tries.append("\(name(.headBias)) prior") }
    if o.learningRateWarmupSteps == 0 { tries.append("\(name(.learningRateWarmupSteps)) 50") }
    tries.append("another \(name(.learningRate)) or seed")
    say(
      String(format: "unet: still on the class-prior plateau after %ld steps: the cross-entropy (%.4f, mean of the last %ld steps) ", afterSteps, mean, recent.count)
        + String(format: "is within %.0f%% of the entropy of the training masks' class frequencies (%.4f), ", tolerance * 100, h)
        + "so the model still predicts those frequencies everywhere. Try " + tries.joined(separator: ", ") + ".")
  }
}
