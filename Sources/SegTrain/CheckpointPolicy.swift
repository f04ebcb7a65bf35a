import Foundation
import SegCore
import SegData
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

  /// The augmentation a training run uses: a resumed checkpoint's record when it has one (so that
  /// the run draws what the uninterrupted one would), else the settings'. Refuses a record that
  /// differs from augmentation options the command line gave.
  public func augmentation(resuming checkpoint: Checkpoint?) throws -> AugmentationOptions {
    let s = settings
    guard let recorded = checkpoint?.augmentation else { return s.augmentation }
    if s.augmentationGiven, recorded != s.augmentation {
      throw SettingError(
        .augmentations, value: AugmentationKind.list(s.augmentation.kinds),
        "the checkpoint in \(url?.deletingLastPathComponent().path ?? "the model directory") was trained with \(recorded), not \(s.augmentation); drop the augmentation flags to resume with the checkpoint's, or train into another \(Setting.modelDirectory)")
    }
    return recorded
  }

  // MARK: - Before training

  /// What `prepareDirectory` found: the run's hold on the model directory (nil without one, or
  /// where its file system cannot lock) and the temporary files of dead runs it removed.
  public struct PreparedDirectory {
    /// Held for the whole run; `release()` (or the end of the process) lets it go.
    public var lock: ModelDirectoryLock?
    /// The temporary files removed, with their sizes in bytes.
    public var removed: [(path: String, bytes: Int)] = []
  }

  /// Makes sure training can save where it will: creates the model directory and writes and
  /// removes a probe file in it, so that a read-only folder, a file or a path below a file is
  /// found before the first step rather than at the first save. Then takes the directory's lock
  /// (`ModelDirectoryLock`: another run training there is refused) and removes the temporary
  /// files that runs killed while writing a checkpoint left behind.
  @discardableResult
  public func prepareDirectory() throws -> PreparedDirectory {
    if let k = settings.keepCheckpoints, k < 1 {
      throw SettingError(.keepCheckpoints, value: k, "must be at least 1 (the step-numbered checkpoints kept); leave it out to keep only the latest")
    }
    guard let url else { return PreparedDirectory() }
    let dir = url.deletingLastPathComponent()
    func fail(_ why: String) -> SettingError {
      SettingError(.modelDirectory, value: dir.path, "\(why); choose a folder this user can write to")
    }
    do {
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    } catch {
      throw fail("cannot be created: " + FileProblem.describe(error, path: dir.path, expectingFolder: true))
    }
    let probe = dir.appendingPathComponent(".unet-write-probe-\(getpid())")
    let fd = open(probe.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw fail("cannot be written: " + String(cString: strerror(errno))) }
    let wrote = write(fd, "probe", 5) == 5
    close(fd)
    unlink(probe.path)
    guard wrote else { throw fail("cannot be written: " + String(cString: strerror(errno))) }
    let lock = try ModelDirectoryLock.take(dir)
    return PreparedDirectory(lock: lock, removed: CheckpointPolicy.removeStaleTemporaries(in: dir, locked: lock != nil))
  }

  /// Removes the temporary files this program's atomic writes leave in a model directory when
  /// their process dies mid-write: ".<name>.tmp-<pid>-<n>" for the checkpoint, its step-numbered
  /// and best copies and the best's score, and ".unet-write-probe-<pid>". With the directory
  /// `locked` by this run no other run writes there, so every one of them is a dead run's (its
  /// process id may since belong to another program); without the lock only those whose process
  /// is gone are removed. Nothing else is touched. Returns the paths removed and their sizes.
  public static func removeStaleTemporaries(in dir: URL, locked: Bool) -> [(path: String, bytes: Int)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    var removed: [(path: String, bytes: Int)] = []
    for name in names.sorted() {
      guard let pid = temporaryOwner(name), pid != getpid() else { continue }
      if !locked, kill(pid, 0) == 0 || errno == EPERM { continue }
      let path = dir.appendingPathComponent(name).path
      var info = stat()
      let bytes = stat(path, &info) == 0 ? Int(info.st_size) : 0
      if unlink(path) == 0 { removed.append((path, bytes)) }
    }
    return removed
  }

  /// The process id in `name` when it is one of our temporary files' names, else nil.
  static func temporaryOwner(_ name: String) -> pid_t? {
    func digits(_ s: Substring) -> Bool { !s.isEmpty && s.count <= 10 && s.allSatisfy { $0.isASCII && $0.isNumber } }
    if name.hasPrefix(".unet-write-probe-") {
      let rest = name.dropFirst(".unet-write-probe-".count)
      return digits(rest) ? pid_t(rest) : nil
    }
    guard name.hasPrefix("."), let tmp = name.range(of: ".tmp-", options: .backwards) else { return nil }
    let target = name[name.index(after: name.startIndex)..<tmp.lowerBound]
    let parts = name[tmp.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2, digits(parts[0]), digits(parts[1]) else { return nil }
    let ours = target == "checkpoint.safetensors" || target == "checkpoint-best.safetensors" || target == "checkpoint-best.json"
      || (target.hasPrefix("checkpoint-") && target.hasSuffix(".safetensors")
          && digits(target.dropFirst("checkpoint-".count).dropLast(".safetensors".count)))
    return ours ? pid_t(parts[0]) : nil
  }

  /// Whether training saves after update `step` besides at its end: with every periodic evaluation
  /// (--evaluate-every), so that the saved model is the one last scored, and every
  /// `checkpointEvery` steps, so that a crash loses at most that many.
  public func savesAfter(step: Int) -> Bool {
    func every(_ n: Int) -> Bool { n > 0 && step % n == 0 }
    return (every(settings.evaluateEvery) || every(settings.checkpointEvery)) && step < settings.training.maxSteps
  }

  /// Saves `model` and `optimizer` (and the loss scale of an fp16 run, and the run's
  /// `augmentation` when given) at `url`, creating the model directory; does nothing without one.
  /// `precision` is the one the run asked for. With
  /// --keep-checkpoints also keeps the step-numbered copy (`CheckpointHistory`). Returns the step
  /// saved, nil when nothing was written.
  @discardableResult
  public func save(
    _ model: UNet, _ optimizer: Adam, precision: Precision, lossScale: LossScaler.State?, augmentation: AugmentationOptions? = nil
  ) throws -> Int? {
    guard let url else { return nil }
    do {
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    } catch {
      throw SettingError(.modelDirectory, value: url.deletingLastPathComponent().path, 
                         "cannot be created: \(FileProblem.describe(error, path: url.deletingLastPathComponent().path, expectingFolder: true))")
    }
    let checkpoint = try Checkpoint(
      model: model, optimizer: optimizer, precision: precision.rawValue, lossScale: lossScale, augmentation: augmentation)
    if let bad = Divergence.firstNonFinite(checkpoint.allTensors) {
      throw Divergence.weightsError(step: checkpoint.step, name: bad, learningRate: settings.training.learningRate)
    }
    try checkpoint.save(to: url)
    if let history { try history.keep(step: checkpoint.step) }
    return checkpoint.step
  }

  /// The step-numbered and best copies of the checkpoint, with --keep-checkpoints and a model directory.
  public var history: CheckpointHistory? {
    guard let url, let k = settings.keepCheckpoints, k >= 1 else { return nil }
    return CheckpointHistory(latest: url, keep: k)
  }
}
