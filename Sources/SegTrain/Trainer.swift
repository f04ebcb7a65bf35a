import SegCore
import SegNN

// MARK: - Training options

/// The reference's training hyper-parameters.
public struct TrainingOptions: Sendable {
  public var batchSize = 1
  public var learningRate = 1e-4
  public var weightDecay = 5e-4
  public var maxSteps = 1000
  public var logEvery = 100
  public var seed: UInt64 = 0
  public var augment = false
  public init() {}
}

// MARK: - Metrics

/// Losses of one step (or means over a logging window).
public struct StepMetrics: Sendable {
  public var crossEntropy = 0.0
  public var dice = 0.0
  public var total = 0.0

  static func + (a: StepMetrics, b: StepMetrics) -> StepMetrics {
    StepMetrics(crossEntropy: a.crossEntropy + b.crossEntropy, dice: a.dice + b.dice, total: a.total + b.total)
  }
  func scaled(_ s: Double) -> StepMetrics {
    StepMetrics(crossEntropy: crossEntropy * s, dice: dice * s, total: total * s)
  }
}

/// Scores of a model on labelled tiles.
public struct EvaluationResult: Sendable {
  /// The reference's eval_dice_score: soft Dice over both classes.
  public var softDice = 0.0
  /// Hard Dice of the foreground (argmax == 1), over all tiles' pixels together.
  public var foregroundDice = 0.0
  public var losses = StepMetrics()
}

// MARK: - Trainer

/// The reference's training loop, eager: forward, loss (cross-entropy + soft Dice + L2), gradients,
/// Adam. Training metrics are averaged over each logging window (the reference logs single steps).
public final class Trainer {
  public let model: UNet
  public let optimizer: Adam
  public let options: TrainingOptions

  public init(model: UNet, options: TrainingOptions) {
    self.model = model
    self.options = options
    optimizer = Adam(learningRate: options.learningRate)
  }

  /// One optimisation step on images [N,S,S,C] and one-hot targets [N,S',S',K].
  public func step(images: Tensor, targets: Tensor) throws -> StepMetrics {
    let params = model.parameters
    let stepIndex = UInt64(optimizer.step)
    let logits = try model(images, dropoutSeed: options.seed &* 1_000_003 &+ stepIndex)
    let parts = try segmentationLoss(logits: logits, targets: targets)
    let loss = try parts.total + l2Penalty(params.map(\.value), weightDecay: options.weightDecay)
    let grads = try gradients(of: loss, wrt: params.map(\.value))
    try optimizer.update(params, gradients: grads)
    return StepMetrics(crossEntropy: try parts.crossEntropy.item(), dice: try parts.dice.item(), total: try loss.item())
  }

  /// Runs `options.maxSteps` steps on batches from `nextBatch(step)`, calling `log(step, means)`
  /// every `logEvery` steps with the metrics averaged over the window.
  public func train(
    nextBatch: (Int) throws -> (Tensor, Tensor), log: (Int, StepMetrics) -> Void
  ) throws {
    var window = StepMetrics()
    var count = 0
    while optimizer.step < options.maxSteps {
      let (x, y) = try nextBatch(optimizer.step)
      window = window + (try step(images: x, targets: y))
      count += 1
      if optimizer.step % max(options.logEvery, 1) == 0 || optimizer.step == options.maxSteps {
        log(optimizer.step, window.scaled(1 / Double(count)))
        window = StepMetrics()
        count = 0
      }
    }
  }

  /// Scores the model on images [N,S,S,C] with one-hot targets [N,S',S',K], without dropout.
  public func evaluate(images: Tensor, targets: Tensor) throws -> EvaluationResult {
    try withoutGradients {
      let logits = try model(images)
      let parts = try segmentationLoss(logits: logits, targets: targets)
      let probabilities = try softmax(logits)
      let predicted = try oneHot(argmax(logits), classes: model.config.classes)
      let fg = try slice(predicted, starts: [0, 0, 0, 1], sizes: [predicted.shape[0], predicted.shape[1], predicted.shape[2], 1])
      let truth = try slice(targets, starts: [0, 0, 0, 1], sizes: [targets.shape[0], targets.shape[1], targets.shape[2], 1])
      let overlap = try sum(fg * truth).item(), total = try (sum(fg) + sum(truth)).item()
      return EvaluationResult(
        softDice: try softDice(probabilities: probabilities, targets: targets).item(),
        foregroundDice: total == 0 ? 1 : 2 * overlap / total,
        losses: StepMetrics(crossEntropy: try parts.crossEntropy.item(), dice: try parts.dice.item(), total: try parts.total.item()))
    }
  }
}
