import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Runner

/// Runs what the reference's main.py runs: train, evaluate and predict, with checkpoints in the
/// model directory and DLLogger lines in the log file. Messages for people go to `say`.
public final class Runner {
  public let settings: RunSettings
  public let backend: any Backend
  let say: (String) -> Void
  /// Called after every training step with (step, max steps) for a progress display.
  public var progress: ((Int, Int) -> Void)?

  public init(settings: RunSettings, backend: any Backend, say: @escaping (String) -> Void) {
    self.settings = settings
    self.backend = backend
    self.say = say
  }

  /// The requested precision resolved against the backend: what the model computes in and
  /// whether training scales the loss.
  public var precision: PrecisionPolicy { PrecisionPolicy(settings.precision, on: backend) }

  /// Runs the mode; returns the last evaluation, if any.
  @discardableResult
  public func run() throws -> EvaluationReport? {
    let s = settings
    if let note = precision.note(training: s.mode.trains) { say("unet: " + note) }
    let checkpoint = try existingCheckpoint()
    // The checkpoint's model decides the channels; a fresh one takes --input-channels or the files'.
    var config = checkpoint?.config ?? s.model
    let data = try loadData(channels: checkpoint != nil || s.inputChannelsGiven ? config.inputChannels : nil, classes: config.classes)
    config.inputChannels = data.channels
    let split = try splitData(data.train)
    let logger = try s.logFile.map { try DLLogger(url: $0, parameters: logParameters()) }
    let (model, optimizer) = try prepareModel(config: config, checkpoint: checkpoint)

    var report: EvaluationReport?
    if s.mode.trains {
      let scaler = precision.usesLossScaling ? checkpoint?.lossScale.map { LossScaler().restored($0) } ?? LossScaler() : nil
      report = try train(model, optimizer, scaler: scaler, on: split.train, validating: split.validation, logger: logger)
    }
    if s.mode.evaluates {
      report = try evaluate(model, on: split.validation, step: optimizer.step, logger: logger)
    }
    if s.mode.predicts {
      try predict(model, data: data)
    }
    return report
  }

  // MARK: - Data

  /// Labelled slices and unlabelled test images, from an ISBI stack, an images/ + masks/ folder,
  /// or generated, all with `channels` channels.
  struct LoadedData {
    var train: [LabelledSlice]
    var test: [(name: String, image: Image)]
    /// Test images come from an ISBI test volume (predictions go to one TIFF stack).
    var isStack: Bool
    /// Channels of every training slice and test image: 1 or 3.
    var channels: Int
  }

  /// The data with `channels` channels (gray copied to RGB, RGB to luma); nil keeps a folder data
  /// set's own (3 when any image is RGB), and gray for the others. A folder's masks are read as
  /// the model's `classes`.
  private func loadData(channels: Int?, classes: Int) throws -> LoadedData {
    let s = settings
    var data: LoadedData
    if let dir = s.dataDir, try s.dataset ?? DatasetKind.detect(directory: dir) == .folder {
      let set = try FolderDataset.load(directory: dir, classes: classes, channels: channels)
      return LoadedData(train: set.labelledSlices(), test: set.test.map { ($0.name, $0.image) }, isStack: false, channels: set.channels)
    } else if let dir = s.dataDir {
      let set = try ISBIDataset.load(directory: dir)
      data = LoadedData(train: set.train, test: try set.test.enumerated().map { ("test-\($0.offset)", try Image($0.element)) },
                        isStack: true, channels: 1)
    } else {
      let seed = s.training.seed
      let test = try (0..<s.syntheticTestSlices).map { i -> (String, Image) in
        let sl = SyntheticEM.slice(size: s.syntheticSize, seed: seed, index: UInt64(s.syntheticSlices + i))
        return ("test-\(i)", try Image(sl.grayImage))
      }
      data = LoadedData(train: SyntheticEM.generate(count: s.syntheticSlices, size: s.syntheticSize, seed: seed), test: test,
                        isStack: true, channels: 1)
    }
    guard let channels, channels != data.channels else { return data }
    data.train = data.train.map { $0.converted(channels: channels) }
    data.test = data.test.map { ($0.name, $0.image.converted(channels: channels)) }
    data.channels = channels
    return data
  }

  private func splitData(_ slices: [LabelledSlice]) throws -> (train: [LabelledSlice], validation: [LabelledSlice]) {
    guard let fold = settings.fold else { return (slices, slices) }
    let (train, validation) = try CrossValidation.split(count: slices.count, folds: settings.folds, fold: fold, seed: settings.training.seed)
    return (train.map { slices[$0] }, validation.map { slices[$0] })
  }

  // MARK: - Model and checkpoint

  /// The checkpoint to continue from when resuming, evaluating or predicting; nil for a fresh
  /// model. Refuses to train over an existing checkpoint without --resume-training, so that no
  /// trained model is lost, and a checkpoint whose model differs from the model options given.
  private func existingCheckpoint() throws -> Checkpoint? {
    let s = settings
    let url = s.checkpointURL
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

  /// A fresh model of `config`, or `checkpoint`'s model with its weights and optimizer state.
  private func prepareModel(config: UNetConfig, checkpoint: Checkpoint?) throws -> (UNet, Adam) {
    let s = settings
    let optimizer = Adam(learningRate: s.training.learningRate)
    guard let checkpoint, let url = s.checkpointURL else {
      let model = try UNet(config: config, seed: s.training.seed, on: backend)
      model.computeType = precision.computeType
      return (model, optimizer)
    }
    let model = try UNet(config: checkpoint.config, seed: s.training.seed, on: backend)
    model.computeType = precision.computeType
    try checkpoint.apply(to: model, optimizer: optimizer)
    say("unet: loaded \(url.path) (step \(checkpoint.step))")
    return (model, optimizer)
  }

  private func saveCheckpoint(_ model: UNet, _ optimizer: Adam, lossScale: LossScaler.State?) throws {
    guard let url = settings.checkpointURL else { return }
    do {
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    } catch {
      throw SettingError(.modelDirectory, value: url.deletingLastPathComponent().path, "cannot be created: \(error.localizedDescription)")
    }
    try Checkpoint(model: model, optimizer: optimizer, precision: settings.precision.rawValue, lossScale: lossScale).save(to: url)
  }

  // MARK: - Training

  private func train(
    _ model: UNet, _ optimizer: Adam, scaler: LossScaler?, on slices: [LabelledSlice], validating validation: [LabelledSlice],
    logger: DLLogger?
  ) throws -> EvaluationReport? {
    let s = settings
    var pipelineOptions = PipelineOptions()
    pipelineOptions.batchSize = s.training.batchSize
    pipelineOptions.seed = s.training.seed
    pipelineOptions.augmentation = s.training.augment ? AugmentationOptions() : nil
    pipelineOptions.inputMode = s.inputMode
    pipelineOptions.workers = s.workers
    // Batch i depends only on (seed, i), so a resumed run sees what an uninterrupted one would.
    let pipeline = try TrainingPipeline(slices: slices, config: model.config, options: pipelineOptions, firstBatch: optimizer.step)
    defer { pipeline.stop() }
    let trainer = Trainer(model: model, optimizer: optimizer, options: s.training, lossScaler: scaler)
    say("unet: \(describe(model)), on \(backend.name), \(precision); \(slices.count) training slices, \(validation.count) validation")
    let clock = ContinuousClock()
    let start = clock.now
    let firstStep = optimizer.step
    var report: EvaluationReport?
    try trainer.train(
      nextBatch: { _ in try pipeline.next().tensors(on: backend) },
      afterStep: { step in
        progress?(step, s.training.maxSteps)
        if s.evaluateEvery > 0, step % s.evaluateEvery == 0, step < s.training.maxSteps {
          report = try evaluate(model, on: validation, step: step, logger: logger)
          try saveCheckpoint(model, optimizer, lossScale: trainer.lossScaler?.state)
        }
      },
      log: { step, m in
        let rate = Double((step - firstStep) * s.training.batchSize) / max((clock.now - start).seconds, 1e-9)
        let scaling = trainer.lossScaler.map { String(format: ", loss_scale %.0f, skipped_steps %d", $0.scale, $0.skippedSteps) } ?? ""
        say(String(format: "step %d: train_ce_loss %.4f, train_dice_loss %.4f, train_total_loss %.4f (means over the last %d steps), %.2f img/s",
                   step, m.crossEntropy, m.dice, m.total, m.steps, rate) + scaling)
        var data: [String: LogValue] = [
          "train_ce_loss": .double(m.crossEntropy), "train_dice_loss": .double(m.dice),
          "train_total_loss": .double(m.total), "throughput_train": .double(rate),
        ]
        if let scaler = trainer.lossScaler {
          data["loss_scale"] = .double(scaler.scale)
          data["skipped_steps"] = .int(scaler.skippedSteps)
        }
        try logger?.log(step: [step], data: data)
      })
    try saveCheckpoint(model, optimizer, lossScale: trainer.lossScaler?.state)
    say(String(format: "unet: trained to step %d in %.0f s", optimizer.step, (clock.now - start).seconds)
      + (trainer.lossScaler.map { String(format: " (loss scale %.0f, %d steps skipped)", $0.scale, $0.skippedSteps) } ?? "")
      + (s.checkpointURL.map { "; checkpoint \($0.path)" } ?? ""))
    return report
  }

  // MARK: - Evaluation and prediction

  private func evaluate(_ model: UNet, on slices: [LabelledSlice], step: Int, logger: DLLogger?) throws -> EvaluationReport {
    let r = try SegTrain.evaluate(model, on: slices, batchSize: settings.training.batchSize, window: settings.window)
    say(String(format: "evaluation at step %d on %d images: eval_dice_score %.4f, eval_ce_loss %.4f, mean Dice %.4f, mean IoU %.4f",
               step, r.perImage.count, r.softDice, r.crossEntropy, r.meanDice, r.meanIoU))
    say(r.table())
    if let url = settings.evaluationJSON {
      do { try r.jsonData().write(to: url, options: .atomic) } catch {
        throw SettingError(.evaluationOutput, value: url.path, "cannot write the evaluation report: \(error.localizedDescription)")
      }
    }
    try logger?.log(step: [step], data: [
      "eval_dice_score": .double(r.softDice), "eval_ce_loss": .double(r.crossEntropy), "eval_dice_loss": .double(r.diceLoss),
      "eval_total_loss": .double(r.crossEntropy + r.diceLoss), "eval_foreground_dice": .double(r.scores.foregroundDice),
      "eval_foreground_iou": .double(r.scores.foregroundIoU),
    ])
    return r
  }

  private func predict(_ model: UNet, data: LoadedData) throws {
    let s = settings
    let writer = try PredictionWriter(model: model, batchSize: s.training.batchSize, window: s.window, probabilities: s.predictProbabilities)
    if !s.predictInputs.isEmpty {
      guard let output = s.predictOutput else {
        throw SettingError(.predictionOutput, "needed with \(Setting.predictionInputs) (the folder for masks and overlays)")
      }
      let files = try PredictionWriter.inputFiles(s.predictInputs)
      let written = try writer.write(files, to: output)
      say("unet: predicted \(files.count) images; wrote \(written.count) files to \(output.path)")
      return
    }
    guard let dir = s.predictionsDirectory else {
      throw SettingError(.modelDirectory, "needed to write predictions (or give \(Setting.predictionInputs) and \(Setting.predictionOutput))")
    }
    guard !data.test.isEmpty else {
      throw SettingError(.predictionInputs, "the data set has no test images; give \(Setting.predictionInputs) FILE... \(Setting.predictionOutput) DIR")
    }
    if data.isStack {
      let masks = try predictMasks(model, images: data.test.map(\.image), batchSize: s.training.batchSize, window: s.window)
      let url = dir.appendingPathComponent("test-masks.tif")
      do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
        throw SettingError(s.predictOutput == nil ? .modelDirectory : .predictionOutput, value: dir.path,
                           "cannot be created: \(error.localizedDescription)")
      }
      try TIFF.write(masks, to: url)
      say("unet: wrote \(masks.count) masks to \(url.path)")
    } else {
      for (name, image) in data.test { _ = try writer.write(image, name: name, to: dir) }
      say("unet: wrote masks and overlays of \(data.test.count) test images to \(dir.path)")
    }
  }

  private func describe(_ model: UNet) -> String {
    let c = model.config
    return "\(c.padding.rawValue) U-Net, depth \(c.depth), \(c.baseFilters) base filters, \(model.parameterCount) parameters, tile \(c.inputSize)->\(c.outputSize)"
  }

  private func logParameters() -> [String: LogValue] {
    let s = settings
    return [
      "exec_mode": .string(s.mode.rawValue), "data_dir": .string(s.dataDir?.path ?? "synthetic"),
      "model_dir": .string(s.modelDir?.path ?? ""), "batch_size": .int(s.training.batchSize),
      "learning_rate": .double(s.training.learningRate), "max_steps": .int(s.training.maxSteps),
      "weight_decay": .double(s.training.weightDecay), "fold": s.fold.map { .int($0) } ?? .null,
      "seed": .int(Int(truncatingIfNeeded: s.training.seed)), "augment": .bool(s.training.augment),
      "device": .string(backend.name), "precision": .string(s.precision.rawValue),
      "compute_precision": .string(precision.effective.rawValue),
    ]
  }
}
