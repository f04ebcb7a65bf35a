import Foundation
import SegCore
import SegData
import SegDistributed
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
  /// The ranks of a data-parallel run; nil runs alone.
  public let parallel: DataParallel?
  /// Whether this process writes files and prints: alone, or rank 0.
  var isRoot: Bool { parallel?.communicator.isRoot ?? true }
  private let naming: (Setting) -> String

  /// A run of `settings` on `backend` in `precision` (`PrecisionPolicy(settings.precision, on:
  /// backend)`), with `callbacks` told of it after the logging ones and before the evaluator and
  /// the checkpointer. `deviceMemoryFree` tells a device backend's free memory (a GPU's); without
  /// it a training step must fit in the host's available memory. Messages name settings with
  /// `naming` (a command line passes its flags).
  public init(
    settings: RunSettings, backend: any Backend, precision: PrecisionPolicy, say: @escaping (String) -> Void,
    callbacks: [any TrainingCallback] = [], deviceMemoryFree: (() -> Int?)? = nil, parallel: DataParallel? = nil,
    naming: @escaping (Setting) -> String = \.rawValue
  ) {
    self.deviceMemoryFree = deviceMemoryFree
    self.naming = naming
    self.settings = settings
    self.backend = backend
    self.precision = precision
    self.parallel = parallel
    // Only rank 0 prints, logs, draws progress and saves; the others train and evaluate silently.
    let root = parallel?.communicator.isRoot ?? true
    self.say = root ? say : { _ in }
    extraCallbacks = root ? callbacks : []
  }

  /// Runs the mode; returns the last evaluation, if any.
  @discardableResult
  public func run() throws -> EvaluationReport? {
    let s = settings
    let evaluator = PeriodicEvaluator(every: s.evaluateEvery, batchSize: s.training.batchSize, window: s.window, compile: s.training.compile)
    evaluator.communicator = parallel?.communicator
    var list: [any TrainingCallback] = isRoot ? [ConsoleReporter(say: say), PlateauWatch(say: say, naming: naming)] : []
    if isRoot, let url = s.evaluationJSON { list.append(EvaluationJSONWriter(url: url)) }
    if isRoot, let url = s.logFile { list.append(DLLoggerCallback(url: url)) }
    list += extraCallbacks
    let policy = CheckpointPolicy(settings: s)
    list.append(evaluator)
    if isRoot { list.append(Checkpointer(policy: policy, precision: precision.requested)) }
    let stopper = SignalStopper(policy: policy, precision: precision.requested)
    if let parallel {
      stopper.saves = isRoot
      stopper.agreement = { [communicator = parallel.communicator] own in
        var flag = [own ? 1.0 : 0]
        try communicator.allreduce(&flag, .max)
        return flag[0] != 0
      }
      if parallel.checkEvery > 0 {
        list.append(ReplicaCheck(every: parallel.checkEvery, communicator: parallel.communicator, say: say))
      }
    }
    list.append(stopper)
    let callbacks = TrainingCallbacks(list)
    try callbacks.scope { try runModes(callbacks: callbacks, evaluator: evaluator) }
    try callbacks.each { try $0.runEnded() }
    return evaluator.lastReport
  }

  private func runModes(callbacks: TrainingCallbacks, evaluator: PeriodicEvaluator) throws {
    var s = settings
    if let note = precision.note(training: s.mode.trains) { say("unet: " + note) }
    let policy = CheckpointPolicy(settings: s)
    let checkpoint = try policy.existing()
    // Training holds the model directory until every mode is done (its last save included); in a
    // data-parallel run rank 0 alone writes there, so it alone holds it.
    var lock: ModelDirectoryLock?
    defer { lock?.release() }
    if s.mode.trains {
      if isRoot {
        let prepared = try policy.prepareDirectory()
        lock = prepared.lock
        for (path, bytes) in prepared.removed {
          say("unet: removed \(path) (\(Runner.describeSize(bytes))), a temporary file of a run that stopped while saving")
        }
      }
      if s.resume, checkpoint == nil, let url = s.checkpointURL {
        say("unet: nothing to resume: no checkpoint at \(url.path) yet; training starts from step 0")
      }
      // A resumed run draws what the uninterrupted one would: the callbacks see (and save) this.
      s.augmentation = try policy.augmentation(resuming: checkpoint)
      if s.resume, let history = policy.history, let recorded = history.recordedBest() {
        say(String(format: "unet: %@ is the best so far (step %ld, eval_dice_score %.4f%@); only a better evaluation replaces it",
                   history.best.path, recorded.score.step, recorded.score.evalDiceScore,
                   recorded.exact ? "" : ", or better: the run that made it stopped before recording its own score"))
      }
    }
    // The checkpoint's model decides the channels; a fresh one takes --input-channels or the files'.
    var config = checkpoint?.config ?? s.model
    let source = RunDataSource(settings: s)
    let data = try source.load(channels: checkpoint != nil || s.inputChannelsGiven ? config.inputChannels : nil, classes: config.classes)
    config.inputChannels = data.channels
    let split = try source.split(data.train)
    let prior = s.mode.trains ? classPrior(split.train, classes: config.classes) : []
    try callbacks.each {
      try $0.runStarted(RunContext(settings: s, backendName: backend.name, precision: precision, validation: split.validation, classPrior: prior))
    }
    let (model, optimizer) = try prepareModel(config: config, checkpoint: checkpoint, classPrior: prior)
    var lossScale = checkpoint?.lossScale
    if let parallel {
      lossScale = try Replicas.broadcast(model, optimizer, lossScale: lossScale, over: parallel.communicator)
      let h = try Replicas.verify(model, over: parallel.communicator, when: "after the broadcast from rank 0")
      say("unet: \(parallel.communicator.size) ranks hold the same weights (checksum \(String(h, radix: 16)))")
    }

    if s.mode.trains {
      try train(
        model, optimizer, lossScale: lossScale, augmentation: s.augmentation, resumed: checkpoint?.augmentation != nil,
        on: split.train, validating: split.validation.count, callbacks: callbacks)
    }
    if s.mode.evaluates {
      let report = try evaluator.evaluate(model)
      try callbacks.evaluated(report, at: optimizer.step)
      if isRoot, let url = s.contactSheet { try drawContactSheet(report, of: evaluator.validation, model: model, to: url) }
    }
    if s.mode.predicts, isRoot {
      try predict(model, data: data)
    }
  }

  // MARK: - Model

  /// A fresh model of `config` (initialised as the training options say, the head's bias from
  /// `classPrior` when asked), or `checkpoint`'s model with its weights and optimizer state.
  private func prepareModel(config: UNetConfig, checkpoint: Checkpoint?, classPrior: [Double]) throws -> (UNet, Adam) {
    let s = settings
    let optimizer = Adam(learningRate: s.training.learningRate)
    guard let checkpoint, let url = s.checkpointURL else {
      let model = try UNet(config: config, seed: s.training.seed, initializer: s.training.weightInitializer, on: backend)
      if s.training.headBias == .prior, s.mode.trains {
        // A class absent from the masks gets a tiny share rather than log(0).
        let total = classPrior.reduce(0, +)
        try model.setHeadBias(classPrior: classPrior.map { max($0, 1e-4 * max(total, 1)) })
      }
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
    _ model: UNet, _ optimizer: Adam, lossScale: LossScaler.State?, augmentation: AugmentationOptions, resumed: Bool,
    on slices: [LabelledSlice], validating validation: Int, callbacks: TrainingCallbacks
  ) throws {
    let s = settings
    try checkMemory(model.config)
    var pipelineOptions = PipelineOptions()
    pipelineOptions.batchSize = s.training.batchSize
    pipelineOptions.seed = s.training.seed
    pipelineOptions.augmentation = augmentation.isEmpty ? nil : augmentation
    pipelineOptions.inputMode = s.inputMode
    pipelineOptions.workers = s.workers
    if let parallel {
      // Each rank reads its own share of every epoch; rank r's batch i is part of the run's batch i.
      (pipelineOptions.rank, pipelineOptions.worldSize) = (parallel.communicator.rank, parallel.communicator.size)
      if s.training.compile != nil {
        throw DistributedError.unsupported(
          "--xla (--compile) does not run with several processes yet: its replayed step has no point at which "
            + "gradients are ready to reduce; train without it under mpirun")
      }
    }
    // Batch i depends only on (seed, i), so a resumed run sees what an uninterrupted one would.
    let pipeline = try TrainingPipeline(slices: slices, config: model.config, options: pipelineOptions, firstBatch: optimizer.step)
    defer { pipeline.stop() }
    var batches: any BatchSource = pipeline
    var loopCallbacks = callbacks
    if let dump = s.dumpSteps {
      let recorder = try StepRecorder(directory: dump.directory, steps: dump.steps, source: pipeline, seed: s.training.seed)
      (batches, loopCallbacks) = (recorder, TrainingCallbacks(callbacks.all + [recorder]))
    }
    let loop = TrainingLoop(
      model: model, optimizer: optimizer, options: s.training, precision: precision, lossScale: lossScale, batches: batches,
      on: backend, callbacks: loopCallbacks)
    say("unet: \(describe(model)), on \(backend.name), \(precision); \(slices.count) training slices, \(validation) validation")
    if !augmentation.isEmpty { say("unet: augmentation: \(augmentation)" + (resumed ? " (the checkpoint's)" : "")) }
    if let parallel {
      let n = parallel.communicator.size
      let reducer = parallel.reducer()
      loop.trainer.reducer = reducer
      say("unet: data-parallel on \(n) ranks: effective batch \(n) x \(s.training.batchSize) = \(n * s.training.batchSize) per update, "
        + "learning rate \(s.training.learningRate) (gradients are averaged over the ranks; the rate is not scaled); "
        + "gradients by \(reducer.transport)")
    }
    try loop.run()
    say(String(format: "unet: trained to step %ld in %.0f s", optimizer.step, loop.elapsedSeconds)
      + (loop.trainer.lossScaler.map { String(format: " (loss scale %.0f, %ld steps skipped)", $0.scale, $0.skippedSteps) } ?? "")
      + (s.checkpointURL.map { "; checkpoint \($0.path)" } ?? ""))
  }

  /// Each class's share of the pixels of `slices`' masks.
  private func classPrior(_ slices: [LabelledSlice], classes: Int) -> [Double] {
    var counts = [Double](repeating: 0, count: classes)
    for slice in slices {
      for label in slice.label where Int(label) < classes { counts[Int(label)] += 1 }
    }
    let total = counts.reduce(0, +)
    return total > 0 ? counts.map { $0 / total } : []
  }

  /// Refuses a batch whose step cannot fit in the memory left, before anything large is allocated.
  private func checkMemory(_ config: UNetConfig) throws {
    let need = StepMemory(config: config, batchSize: settings.training.batchSize, computeType: precision.computeType)
    if let free = deviceMemoryFree?() {
      try need.check(available: free, what: "free memory on \(backend.name)")
    } else if let available = AvailableMemory.host() {
      // The ranks on this node share its memory.
      let ranks = parallel?.communicator.localSize ?? 1
      try need.check(available: available / ranks, what: ranks == 1 ? "available host memory (MemAvailable in /proc/meminfo)"
        : "this rank's share (1/\(ranks)) of the available host memory (MemAvailable in /proc/meminfo)")
    }
  }

  /// A size in bytes for people: "512 bytes", "3.2 MB".
  static func describeSize(_ bytes: Int) -> String {
    bytes < 10_000 ? "\(bytes) bytes" : String(format: "%.1f MB", Double(bytes) / 1e6)
  }

  private func describe(_ model: UNet) -> String {
    let c = model.config
    return "\(c.padding.rawValue) U-Net, depth \(c.depth), \(c.baseFilters) base filters, \(model.parameterCount) parameters, tile \(c.inputSize)->\(c.outputSize)"
  }

  // MARK: - Evaluation

  /// Writes the contact sheet of the report's worst and best images (`ContactSheet`) as PNG.
  private func drawContactSheet(_ report: EvaluationReport, of slices: [LabelledSlice], model: UNet, to url: URL) throws {
    guard !report.perImage.isEmpty else { return }
    let predictor = try TiledPredictor(model: model, batchSize: settings.training.batchSize, window: settings.window)
    let sheet = try ContactSheet.make(report: report, slices: slices, predictor: predictor)
    let dir = url.deletingLastPathComponent()
    do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
      throw FileError(file: url.path, "the contact sheet cannot be written: \(FileProblem.describe(error, path: dir.path, expectingFolder: true))")
    }
    try PNG.write(sheet.image(), to: url)
    let (worst, best) = ContactSheet.ranked(report, count: 3)
    say("unet: wrote \(url.path): the \(worst.count) worst and \(best.count) best images by Dice, with their truth and prediction")
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
