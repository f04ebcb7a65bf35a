import ArgumentParser
import Foundation
import SegNN
import SegTrain

// MARK: - Batches

/// Images per training step, and tiles per forward pass when evaluating and predicting.
struct BatchOptions: ParsableArguments {
  @Option(name: [.customLong("batch-size"), .customLong("batch_size")], parsing: .unconditional, help: "Images per training step, and tiles per forward pass when evaluating or predicting (1; 4 without --data-dir).")
  var batchSize: Int?

  func validate() throws {
    if let batchSize, batchSize < 1 { throw ValidationError("--batch-size: must be at least 1, got \(batchSize)") }
  }

  func apply(to s: inout RunSettings, embedded: Bool) { s.training.batchSize = batchSize ?? (embedded ? 4 : 1) }
}

// MARK: - Training

/// The optimizer, the length of the run, resuming and the reference's --benchmark (train).
struct TrainingOptions: ParsableArguments {
  @Option(name: [.customLong("learning-rate"), .customLong("learning_rate")], parsing: .unconditional, help: "Adam's learning rate (1e-4; 1e-3 without --data-dir).")
  var learningRate: Double?
  @Option(name: [.customLong("max-steps"), .customLong("max_steps")], parsing: .unconditional, help: "Training steps (1000; 300 without --data-dir).")
  var maxSteps: Int?
  @Option(name: [.customLong("weight-decay"), .customLong("weight_decay")], parsing: .unconditional, help: "L2 weight decay.")
  var weightDecay = 5e-4
  @Option(name: [.customLong("evaluate-every"), .customLong("evaluate_every")], parsing: .unconditional, help: "Steps between evaluations while training (0: at the end only).")
  var evaluateEvery = 0
  @Option(name: [.customLong("checkpoint-every"), .customLong("checkpoint_every")], parsing: .unconditional, help: "Steps between checkpoints besides those after evaluations and at the end (0: none), so that a crash loses at most this many.")
  var checkpointEvery = 0
  @Option(name: [.customLong("keep-checkpoints"), .customLong("keep_checkpoints")], parsing: .unconditional, help: "Also keep each save as checkpoint-<step>.safetensors, the last this many, and the best by eval_dice_score as checkpoint-best.safetensors (unset: only checkpoint.safetensors).")
  var keepCheckpoints: Int?
  @Flag(name: [.customLong("resume-training"), .customLong("resume_training")], help: "Continue the checkpoint in --model-dir.")
  var resumeTraining = false
  @Flag(help: "Time the steps instead of training to a score, as unet benchmark (--exec-mode predict: inference steps; else training steps), with the reference's model for unset model options.")
  var benchmark = false
  @Option(name: [.customLong("warmup-steps"), .customLong("warmup_steps")], parsing: .unconditional, help: "With --benchmark: steps excluded from timing.")
  var warmupSteps = 200
  @Option(name: [.customLong("init")], help: "How the ReLU layers' kernels start: he (He-normal, the default: no long start on the class-prior plateau) or glorot (Glorot-uniform, the reference's).")
  var initializer = TrainingOptions.defaultInitializer
  @Option(name: [.customLong("head-bias"), .customLong("head_bias")], help: "How the head's bias starts: prior (log of the training masks' class frequencies, the default) or zero (the reference's).")
  var headBias = TrainingOptions.defaultHeadBias
  @Option(name: [.customLong("lr-warmup-steps"), .customLong("lr_warmup_steps")], parsing: .unconditional, help: "Steps over which the learning rate ramps up linearly from 0 (0: constant, as the reference).")
  var learningRateWarmupSteps = TrainingOptions.defaultLearningRateWarmupSteps
  @Option(name: [.customLong("dump-steps"), .customLong("dump_steps")], parsing: .unconditional, help: ArgumentHelp("Debugging: record the first N steps (initial weights, batches, dropout masks, losses, weights after step N) as safetensors in DIR, for bench/golden_torch.py.", valueName: "N:DIR"))
  var dumpSteps: String?

  /// The defaults measured best on real data (docs/reference.md, "Starting without a plateau").
  static let defaultInitializer = WeightInitializer.he
  static let defaultHeadBias = HeadBias.prior
  static let defaultLearningRateWarmupSteps = 0

  /// --dump-steps N:DIR as (DIR, N).
  var dump: (directory: URL, steps: Int)? {
    get throws {
      guard let dumpSteps else { return nil }
      let parts = dumpSteps.split(separator: ":", maxSplits: 1).map(String.init)
      guard parts.count == 2, let n = Int(parts[0]), n >= 1, !parts[1].isEmpty else {
        throw ValidationError("--dump-steps: expected N:DIR with N at least 1 (e.g. 20:golden), got \(dumpSteps)")
      }
      return (URL(fileURLWithPath: parts[1]), n)
    }
  }

  func validate() throws {
    if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps: must be at least 1, got \(maxSteps)") }
    if let lr = learningRate, !(lr > 0 && lr.isFinite) { throw ValidationError("--learning-rate: must be a positive finite number, got \(lr)") }
    if !(weightDecay >= 0 && weightDecay.isFinite) {
      throw ValidationError("--weight-decay: must be a finite number, 0 or more, got \(weightDecay)")
    }
    if evaluateEvery < 0 { throw ValidationError("--evaluate-every: must be 0 or more, got \(evaluateEvery)") }
    if checkpointEvery < 0 { throw ValidationError("--checkpoint-every: must be 0 or more, got \(checkpointEvery)") }
    if warmupSteps < 0 { throw ValidationError("--warmup-steps: must be 0 or more, got \(warmupSteps)") }
    if learningRateWarmupSteps < 0 { throw ValidationError("--lr-warmup-steps: must be 0 or more, got \(learningRateWarmupSteps)") }
    _ = try dump
  }

  func apply(to s: inout RunSettings, embedded: Bool) {
    s.training.learningRate = learningRate ?? (embedded ? 1e-3 : 1e-4)
    s.training.maxSteps = maxSteps ?? (embedded ? 300 : 1000)
    s.training.weightDecay = weightDecay
    s.evaluateEvery = evaluateEvery
    s.checkpointEvery = checkpointEvery
    s.keepCheckpoints = keepCheckpoints
    s.resume = resumeTraining
    s.training.weightInitializer = initializer
    s.training.headBias = headBias
    s.training.learningRateWarmupSteps = learningRateWarmupSteps
    s.dumpSteps = try? dump
  }
}

extension ExecMode: ExpressibleByArgument {}
extension WeightInitializer: ExpressibleByArgument {}
extension HeadBias: ExpressibleByArgument {}
