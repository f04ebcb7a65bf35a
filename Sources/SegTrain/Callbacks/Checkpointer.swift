import SegData
import SegNN

// MARK: - Saving while training

/// Saves the training state where and when the `CheckpointPolicy` says: after each periodic
/// evaluation and at the end of training, with the loss scale of an fp16 run. With
/// --keep-checkpoints it also keeps the best save by validation Dice (`eval_dice_score`) as the
/// history's best copy.
public final class Checkpointer: TrainingCallback {
  public let policy: CheckpointPolicy
  /// The precision the run asked for, recorded in the checkpoint.
  public let precision: Precision
  /// The step of the last save, and the Dice of the best save so far (of this run, or of the
  /// run it resumes).
  private var savedStep: Int?, bestDice: Double?
  /// An evaluation reported before the save of its step (periodic ones come before it).
  private var pending: (step: Int, dice: Double)?
  /// The run's augmentation, recorded in every save (a resumed run's is its checkpoint's).
  private var augmentation: AugmentationOptions?

  /// A checkpointer following `policy`.
  public init(policy: CheckpointPolicy, precision: Precision) {
    (self.policy, self.precision) = (policy, precision)
  }

  public func runStarted(_ run: RunContext) throws {
    if run.settings.mode.trains { augmentation = run.settings.augmentation }
  }

  /// A resumed run starts from the best score recorded in the model directory, so that only a
  /// better evaluation replaces the earlier run's best copy.
  public func trainingStarted(_ loop: TrainingLoop) throws {
    if policy.settings.resume, let recorded = policy.history?.recordedBest() { bestDice = recorded.score.evalDiceScore }
  }

  public func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool { policy.savesAfter(step: step) }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    if policy.savesAfter(step: event.step) { try save(loop) }
  }

  public func trainingEnded(_ loop: TrainingLoop) throws { try save(loop) }

  /// Scores the save of `step` when it is already written (the run's own evaluation after
  /// training), else keeps the score for that save.
  public func evaluated(_ report: EvaluationReport, at step: Int) throws {
    if savedStep == step {
      try considerBest(dice: report.softDice, step: step)
    } else {
      pending = (step, report.softDice)
    }
  }

  private func save(_ loop: TrainingLoop) throws {
    try loop.trainer.readDeviceState()
    guard let step = try policy.save(
      loop.model, loop.optimizer, precision: precision, lossScale: loop.trainer.lossScaler?.state, augmentation: augmentation)
    else { return }
    savedStep = step
    if let p = pending, p.step == step { try considerBest(dice: p.dice, step: step) }
    pending = nil
  }

  /// Makes the latest save the best copy when `dice` beats the best so far (a NaN score never does).
  private func considerBest(dice: Double, step: Int) throws {
    guard let history = policy.history, dice.isFinite, bestDice.map({ dice > $0 }) ?? true else { return }
    try history.keepAsBest(step: step, dice: dice)
    bestDice = dice
  }
}
