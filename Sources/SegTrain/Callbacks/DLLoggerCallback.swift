import Foundation
import SegData

// MARK: - DLLogger lines

/// The reference's DLLogger records: the run's flags as the "PARAMETER" line when the run starts,
/// each logging step's mean losses and throughput, and each evaluation's scores.
public final class DLLoggerCallback: TrainingCallback {
  /// The JSON-lines file appended to.
  public let url: URL
  private var logger: DLLogger?

  /// A callback appending to `url` (opened when the run starts).
  public init(url: URL) { self.url = url }

  public func runStarted(_ run: RunContext) throws {
    logger = try DLLogger(url: url, parameters: DLLoggerCallback.parameters(run))
  }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard let m = event.window else { return }
    var data: [String: LogValue] = [
      "train_ce_loss": .double(m.crossEntropy), "train_dice_loss": .double(m.dice),
      "train_total_loss": .double(m.total), "throughput_train": .double(event.imagesPerSecond),
    ]
    if let scaler = event.lossScaler {
      data["loss_scale"] = .double(scaler.scale)
      data["skipped_steps"] = .int(scaler.skippedSteps)
    }
    try logger?.log(step: [event.step], data: data)
  }

  public func evaluated(_ r: EvaluationReport, at step: Int) throws {
    try logger?.log(step: [step], data: [
      "eval_dice_score": .double(r.softDice), "eval_ce_loss": .double(r.crossEntropy), "eval_dice_loss": .double(r.diceLoss),
      "eval_total_loss": .double(r.crossEntropy + r.diceLoss), "eval_foreground_dice": .double(r.scores.foregroundDice),
      "eval_foreground_iou": .double(r.scores.foregroundIoU),
    ])
  }

  /// The "PARAMETER" line: the reference's flags, and the device and precisions.
  static func parameters(_ run: RunContext) -> [String: LogValue] {
    let s = run.settings
    return [
      "exec_mode": .string(s.mode.rawValue), "data_dir": .string(s.dataDir?.path ?? "synthetic"),
      "model_dir": .string(s.modelDir?.path ?? ""), "batch_size": .int(s.training.batchSize),
      "learning_rate": .double(s.training.learningRate), "max_steps": .int(s.training.maxSteps),
      "weight_decay": .double(s.training.weightDecay), "fold": s.fold.map { .int($0) } ?? .null,
      "seed": .int(Int(truncatingIfNeeded: s.training.seed)), "augment": .bool(!s.augmentation.isEmpty),
      "augmentations": .string(AugmentationKind.list(s.augmentation.kinds)),
      "init": .string(s.training.weightInitializer.rawValue), "head_bias": .string(s.training.headBias.rawValue),
      "lr_warmup_steps": .int(s.training.learningRateWarmupSteps),
      "device": .string(run.backendName), "precision": .string(run.precision.requested.rawValue),
      "compute_precision": .string(run.precision.effective.rawValue),
    ]
  }
}
