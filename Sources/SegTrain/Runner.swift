import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Runner

/// Runs what the reference's main.py runs: train, evaluate and predict, from the parts that do
/// the work: the data (`RunDataSource`), the checkpoint rules (`CheckpointPolicy`) and the
/// training loop (`TrainingLoop`) with its callbacks: the console lines, the evaluation report
/// file, the DLLogger lines, the caller's callbacks (a progress bar, a profiler), the periodic
/// evaluator, the checkpointer and the stop on SIGINT or SIGTERM, in that order. Messages for people go to `say`.
public final class Runner {
  /// What to run, as the command line gives it.
  public let settings: RunSettings
  /// Where the model computes.
  public let backend: any Backend
  /// The precision resolved once for `backend`: what the model computes in and whether training
  /// scales the loss.
  public let precision: PrecisionPolicy
  let say: (String) -> Void
  private let extraCallbacks: [any TrainingCallback]
  private let deviceMemoryFree: (() -> Int?)?

  /// A run of `settings` on `backend` in `precision` (`PrecisionPolicy(settings.precision, on:
  /// backend)`), with `callbacks` told of it after the logging ones and before the evaluator and
  /// the checkpointer. `deviceMemoryFree` tells a device backend's free memory (a GPU's); without
  /// it a training step must fit in the host's available memory.
  public init(
    settings: RunSettings, backend: any Backend, precision: PrecisionPolicy, say: @escaping (String) -> Void,
    callbacks: [any TrainingCallback] = [], deviceMemoryFree: (() -> Int?)? = nil
  ) {
    self.deviceMemoryFree = deviceMemoryFree
    self.settings = settings
    self.backend = backend
    self.precision = precision
    self.say = say
    extraCallbacks = callbacks
  }

  /// Runs the mode; returns the last evaluation, if any.
  @discardableResult
  public func run() throws -> EvaluationReport? {
    let s = settings
    let evaluator = PeriodicEvaluator(every: s.evaluateEvery, batchSize: s.training.batchSize, window: s.window, compile: s.training.compile)
    var list: [any TrainingCallback] = [ConsoleReporter(say: say)]
    if let url = s.evaluationJSON { list.append(EvaluationJSONWriter(url: url)) }
    if let url = s.logFile { list.append(DLLoggerCallback(url: url)) }
    list += extraCallbacks
    let policy = CheckpointPolicy(settings: s)
    list += [evaluator, Checkpointer(policy: policy, precision: precision.requested),
             SignalStopper(policy: policy, precision: precision.requested)] as [any TrainingCallback]
    let callbacks = TrainingCallbacks(list)
    try callbacks.scope { try runModes(callbacks: callbacks, evaluator: evaluator) }
    try callbacks.each { try $0.runEnded() }
    return evaluator.lastReport
  }

  private func runModes(callbacks: TrainingCallbacks, evaluator: PeriodicEvaluator) throws {
    let s = settings
    if let note = precision.note(training: s.mode.trains) { say("unet: " + note) }
    let policy = CheckpointPolicy(settings: s)
    let checkpoint = try policy.existing()
    if s.mode.trains {
      for path in try policy.prepareDirectory() { say("unet: removed \(path), left by a run that stopped while saving") }
      if s.resume, checkpoint == nil, let url = s.checkpointURL {
        say("unet: nothing to resume: no checkpoint at \(url.path) yet; training starts from step 0")
      }
    }
    // The checkpoint's model decides the channels; a fresh one takes --input-channels or the files'.
    var config = checkpoint?.config ?? s.model
    let source = RunDataSource(settings: s)
    let data = try source.load(channels: checkpoint != nil || s.inputChannelsGiven ? config.inputChannels : nil, classes: config.classes)
    config.inputChannels = data.channels
    let split = try source.split(data.train)
    try callbacks.each { try $0.runStarted(RunContext(settings: s, backendName: backend.name, precision: precision, validation: split.validation)) }
    let (model, optimizer) = try prepareModel(config: config, checkpoint: checkpoint)

    if s.mode.trains {
      try train(model, optimizer, lossScale: checkpoint?.lossScale, on: split.train, validating: split.validation.count, callbacks: callbacks)
    }
    if s.mode.evaluates {
      try callbacks.evaluated(evaluator.evaluate(model), at: optimizer.step)
    }
    if s.mode.predicts {
      try predict(model, data: data)
    }
  }

  // MARK: - Model

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

  // MARK: - Training

  private func train(
    _ model: UNet, _ optimizer: Adam, lossScale: LossScaler.State?, on slices: [LabelledSlice], validating validation: Int,
    callbacks: TrainingCallbacks
  ) throws {
    let s = settings
    try checkMemory(model.config)
    var pipelineOptions = PipelineOptions()
    pipelineOptions.batchSize = s.training.batchSize
    pipelineOptions.seed = s.training.seed
    pipelineOptions.augmentation = s.training.augment ? AugmentationOptions() : nil
    pipelineOptions.inputMode = s.inputMode
    pipelineOptions.workers = s.workers
    // Batch i depends only on (seed, i), so a resumed run sees what an uninterrupted one would.
    let pipeline = try TrainingPipeline(slices: slices, config: model.config, options: pipelineOptions, firstBatch: optimizer.step)
    defer { pipeline.stop() }
    let loop = TrainingLoop(
      model: model, optimizer: optimizer, options: s.training, precision: precision, lossScale: lossScale, batches: pipeline,
      on: backend, callbacks: callbacks)
    say("unet: \(describe(model)), on \(backend.name), \(precision); \(slices.count) training slices, \(validation) validation")
    try loop.run()
    say(String(format: "unet: trained to step %ld in %.0f s", optimizer.step, loop.elapsedSeconds)
      + (loop.trainer.lossScaler.map { String(format: " (loss scale %.0f, %ld steps skipped)", $0.scale, $0.skippedSteps) } ?? "")
      + (s.checkpointURL.map { "; checkpoint \($0.path)" } ?? ""))
  }

  /// Refuses a batch whose step cannot fit in the memory left, before anything large is allocated.
  private func checkMemory(_ config: UNetConfig) throws {
    let need = StepMemory(config: config, batchSize: settings.training.batchSize, computeType: precision.computeType)
    if let free = deviceMemoryFree?() {
      try need.check(available: free, what: "free memory on \(backend.name)")
    } else if let available = AvailableMemory.host() {
      try need.check(available: available, what: "available host memory (MemAvailable in /proc/meminfo)")
    }
  }

  private func describe(_ model: UNet) -> String {
    let c = model.config
    return "\(c.padding.rawValue) U-Net, depth \(c.depth), \(c.baseFilters) base filters, \(model.parameterCount) parameters, tile \(c.inputSize)->\(c.outputSize)"
  }

  // MARK: - Prediction

  private func predict(_ model: UNet, data: RunData) throws {
    let s = settings
    let writer = try PredictionWriter(model: model, batchSize: s.training.batchSize, window: s.window, probabilities: s.predictProbabilities,
                                      overwrite: s.overwrite, compile: s.training.compile)
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
      try writer.checkTargets([url])
      do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
        throw SettingError(s.predictOutput == nil ? .modelDirectory : .predictionOutput, value: dir.path,
                           "cannot be created: \(FileProblem.describe(error, path: dir.path, expectingFolder: true))")
      }
      try TIFF.write(masks, to: url)
      say("unet: wrote \(masks.count) masks to \(url.path)")
    } else {
      try writer.checkTargets(data.test.flatMap { writer.outputFiles(name: $0.name, in: dir) })
      for (name, image) in data.test { _ = try writer.write(image, name: name, to: dir) }
      say("unet: wrote masks and overlays of \(data.test.count) test images to \(dir.path)")
    }
  }
}
