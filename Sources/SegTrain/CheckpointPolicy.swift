import Foundation
import SegCore
import SegNN

// MARK: - Checkpoint policy

/// Which checkpoint a run starts from, and when and where it saves one: the checkpoint lives in
/// `<model-dir>/checkpoint.safetensors`; training never writes over one unless resuming it (so no
/// trained model is lost); evaluate and predict need one; a resumed checkpoint's model must match
/// the model options given. Saves are atomic (`Checkpoint.save`): after every periodic evaluation
/// and at the end of training.
public struct CheckpointPolicy {
  /// The run's settings: mode, model directory, --resume-training, model options, --evaluate-every.
  public let settings: RunSettings

  /// The policy of `settings`.
  public init(settings: RunSettings) { self.settings = settings }

  /// Where the checkpoint is read and written; nil keeps none (training only).
  public var url: URL? { settings.checkpointURL }

  /// The checkpoint to continue from when resuming, evaluating or predicting; nil for a fresh
  /// model. Refuses to train over an existing checkpoint without --resume-training, and a
  /// checkpoint whose model differs from the model options given.
  public func existing() throws -> Checkpoint? {
    let s = settings
    let exists = url.map { FileManager.default.fileExists(atPath: $0.path) } ?? false
    if s.mode.trains, exists, !s.resume, let url {
      throw SettingError(
        .modelDirectory, value: url.deletingLastPathComponent().path,
        "already holds a checkpoint; pass \(Setting.resume) to continue it, or choose another \(Setting.modelDirectory)")
    }
    guard !s.mode.trains || s.resume else { return nil }
    guard let url else { throw SettingError(.modelDirectory, "needed to \(s.mode.trains ? "resume training" : s.mode.rawValue)") }
    guard exists else {
      if s.mode.trains { return nil }
      throw SettingError(.modelDirectory, value: url.deletingLastPathComponent().path, "no checkpoint at \(url.path); train into it first")
    }
    let checkpoint = try Checkpoint.load(from: url)
    var given = s.model
    if !s.inputChannelsGiven { given.inputChannels = checkpoint.config.inputChannels }
    if s.modelGiven, checkpoint.config != given {
      throw FileError(file: url.path, "the checkpoint's model differs from the model options given; drop them to use the checkpoint's")
    }
    return checkpoint
  }

  /// Whether training saves after update `step` besides at its end: with every periodic evaluation
  /// (--evaluate-every), so that the saved model is the one last scored.
  public func savesAfter(step: Int) -> Bool {
    settings.evaluateEvery > 0 && step % settings.evaluateEvery == 0 && step < settings.training.maxSteps
  }

  /// Saves `model` and `optimizer` (and the loss scale of an fp16 run) at `url`, creating the
  /// model directory; does nothing without one. `precision` is the one the run asked for.
  public func save(_ model: UNet, _ optimizer: Adam, precision: Precision, lossScale: LossScaler.State?) throws {
    guard let url else { return }
    do {
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    } catch {
      throw SettingError(.modelDirectory, value: url.deletingLastPathComponent().path, "cannot be created: \(error.localizedDescription)")
    }
    try Checkpoint(model: model, optimizer: optimizer, precision: precision.rawValue, lossScale: lossScale).save(to: url)
  }
}
