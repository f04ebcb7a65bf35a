import SegData
import SegDistributed
import SegNN

// MARK: - Evaluation during training

/// Scores the model on the run's validation slices every `every` updates while training (not at
/// the last, which the run's own evaluation scores) and tells the loop's callbacks; the run's
/// evaluate mode scores through `evaluate` too.
public final class PeriodicEvaluator: TrainingCallback {
  /// Updates between evaluations; 0 evaluates only when the run asks.
  public let every: Int
  /// Tiles predicted at a time.
  public let batchSize: Int
  /// How whole images are tiled.
  public let window: SlidingWindow
  /// How the forward pass is compiled (`--xla`); nil runs it eagerly.
  public let compile: CompileOptions?
  /// The slices scored, set when the run starts.
  public private(set) var validation: [LabelledSlice] = []
  /// The last report made.
  public private(set) var lastReport: EvaluationReport?
  /// The ranks of a data-parallel run, which share the images and add up their scores; nil
  /// evaluates every image here.
  public var communicator: Communicator?

  /// An evaluator every `every` updates, predicting `batchSize` tiles at a time through `window`,
  /// compiled as `compile` says.
  public init(every: Int, batchSize: Int, window: SlidingWindow, compile: CompileOptions? = nil) {
    (self.every, self.batchSize, self.window, self.compile) = (every, batchSize, window, compile)
  }

  public func runStarted(_ run: RunContext) throws { validation = run.validation }

  public func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool { every > 0 && step % every == 0 }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard every > 0, event.step % every == 0, event.step < event.maxSteps else { return }
    try loop.callbacks.evaluated(evaluate(loop.model), at: event.step)
  }

  /// The scores of `model` on the validation slices.
  public func evaluate(_ model: UNet) throws -> EvaluationReport {
    // A data-parallel evaluation runs eagerly: the ranks' compiled programs would need their own
    // shares of the images traced.
    let report = try communicator.map { try SegTrain.evaluate(model, on: validation, batchSize: batchSize, window: window, over: $0) }
      ?? SegTrain.evaluate(model, on: validation, batchSize: batchSize, window: window, compile: compile)
    lastReport = report
    return report
  }
}
