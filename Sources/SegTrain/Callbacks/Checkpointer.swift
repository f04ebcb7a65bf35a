import SegNN

// MARK: - Saving while training

/// Saves the training state where and when the `CheckpointPolicy` says: after each periodic
/// evaluation and at the end of training, with the loss scale of an fp16 run.
public final class Checkpointer: TrainingCallback {
  public let policy: CheckpointPolicy
  /// The precision the run asked for, recorded in the checkpoint.
  public let precision: Precision

  /// A checkpointer following `policy`.
  public init(policy: CheckpointPolicy, precision: Precision) {
    (self.policy, self.precision) = (policy, precision)
  }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    if policy.savesAfter(step: event.step) { try save(loop) }
  }

  public func trainingEnded(_ loop: TrainingLoop) throws { try save(loop) }

  private func save(_ loop: TrainingLoop) throws {
    try policy.save(loop.model, loop.optimizer, precision: precision, lossScale: loop.trainer.lossScaler?.state)
  }
}
