import ArgumentParser
import Foundation
import SegCore
import SegCUDA
import SegDistributed
import SegNN
import SegTrain

// MARK: - unet train

/// `unet train`: the reference's main.py, with its flags (each also in its snake_case spelling).
/// With no --data-dir, trains a small U-Net on generated EM-like data for a few minutes on 2
/// cores and prints its validation Dice.
struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train, evaluate and predict as the reference's main.py (with no --data-dir: a small model on generated EM-like data).")

  @OptionGroup(title: "Mode") var mode: ModeOptions
  @OptionGroup(title: "Data") var data: DataOptions
  @OptionGroup(title: "Data") var folds: FoldOptions
  @OptionGroup(title: "Data") var trainingData: TrainingDataOptions
  @OptionGroup(title: "Augmentation") var augmentation: AugmentationFlags
  @OptionGroup(title: "Model") var model: ModelOptions
  @OptionGroup(title: "Model") var checkpoint: CheckpointOptions
  @OptionGroup(title: "Training") var batch: BatchOptions
  @OptionGroup(title: "Training") var training: TrainingOptions
  @OptionGroup(title: "Precision and device") var device: DeviceOptions
  @OptionGroup(title: "Evaluation and prediction") var window: WindowOptions
  @OptionGroup(title: "Logging") var logging: LoggingOptions
  @OptionGroup(title: "Logging") var trainingLog: TrainingLogOptions
  @OptionGroup(title: "Evaluation and prediction") var overwrite: OverwriteOptions
  @OptionGroup(title: "Logging") var tensorboard: TensorBoardOptions

  /// What the run does, as the reference's --exec_mode.
  struct ModeOptions: ParsableArguments {
    @Option(name: [.customLong("exec-mode"), .customLong("exec_mode")], help: "train, evaluate, predict, train_and_evaluate or train_and_predict.")
    var execMode = ExecMode.trainAndEvaluate
  }

  func run() throws {
    let execMode = mode.execMode
    guard training.benchmark else {
      let embedded = data.embedded
      var s = RunSettings()
      s.mode = execMode
      data.apply(to: &s)
      folds.apply(to: &s, embedded: embedded)
      trainingData.apply(to: &s)
      try augmentation.apply(to: &s)
      try model.apply(to: &s, embedded: embedded)
      checkpoint.apply(to: &s)
      batch.apply(to: &s, embedded: embedded)
      training.apply(to: &s, embedded: embedded)
      window.apply(to: &s)
      logging.apply(to: &s)
      trainingLog.apply(to: &s, embedded: embedded)
      overwrite.apply(to: &s)
      s.precision = try device.precision.resolved()
      s.training.compile = device.compile
      return try execute(s, device: device.device, profile: logging.profile, callbacks: tensorboard.callbacks)
    }
    var b = BenchmarkOptions()
    b.mode = execMode == .predict ? .predict : .train
    b.batchSize = batch.batchSize ?? 1
    b.warmupSteps = training.warmupSteps
    b.steps = training.maxSteps ?? b.mode.defaultSteps
    b.seed = data.seed
    b.learningRate = training.learningRate ?? b.learningRate
    b.precision = try device.precision.resolved()
    b.compile = device.compile
    try runBenchmark(b, model: model, device: device.device, output: nil, logDir: logging.logDir, profile: logging.profile)
  }
}

// MARK: - unet evaluate

/// `unet evaluate`: scores the checkpoint in --model-dir.
struct EvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate", abstract: "Evaluate the checkpoint in --model-dir on the validation fold (or every labelled slice).")

  @OptionGroup(title: "Data") var data: DataOptions
  @OptionGroup(title: "Data") var folds: FoldOptions
  @OptionGroup(title: "Model") var model: ModelOptions
  @OptionGroup(title: "Model") var checkpoint: CheckpointOptions
  @OptionGroup(title: "Precision and device") var device: DeviceOptions
  @OptionGroup(title: "Evaluation and prediction") var batch: BatchOptions
  @OptionGroup(title: "Evaluation and prediction") var window: WindowOptions
  @OptionGroup(title: "Evaluation and prediction") var report: ReportOptions
  @OptionGroup(title: "Logging") var logging: LoggingOptions

  /// Where evaluate writes its scores and its contact sheet.
  struct ReportOptions: ParsableArguments {
    @Option(help: "Also write the report as JSON (mean_dice, mean_iou, soft_dice, per_image, per_class) to this file.")
    var output: String?
    @Option(name: .customLong("contact-sheet"), help: "PNG of the worst and best images by Dice, each beside its truth and prediction (default <model-dir>/contact-sheet.png).")
    var contactSheet: String?
    @Flag(name: .customLong("no-contact-sheet"), help: "Draw no contact sheet.")
    var noContactSheet = false

    func validate() throws {
      if noContactSheet, let contactSheet { throw ValidationError("--contact-sheet \(contactSheet) and --no-contact-sheet: give one of them") }
    }

    /// The contact sheet's file: the one named, else <model-dir>/contact-sheet.png; nil with --no-contact-sheet.
    func contactSheetURL(modelDir: URL?) -> URL? {
      if noContactSheet { return nil }
      return contactSheet.map { URL(fileURLWithPath: $0) } ?? modelDir?.appendingPathComponent("contact-sheet.png")
    }
  }

  func run() throws {
    let embedded = data.embedded
    var s = RunSettings()
    s.mode = .evaluate
    data.apply(to: &s)
    folds.apply(to: &s, embedded: embedded)
    try model.apply(to: &s, embedded: embedded)
    checkpoint.apply(to: &s)
    batch.apply(to: &s, embedded: embedded)
    window.apply(to: &s)
    logging.apply(to: &s)
    s.training.compile = device.compile
    s.precision = try device.precision.resolved()
    s.evaluationJSON = report.output.map { URL(fileURLWithPath: $0) }
    s.contactSheet = report.contactSheetURL(modelDir: s.modelDir)
    try execute(s, device: device.device, profile: logging.profile)
  }
}

// MARK: - unet predict

/// `unet predict`: writes masks of the test images or of image files with the checkpoint in --model-dir.
struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Predict masks: of image files (--input ... --output DIR: a mask and an overlay PNG each), or of the data set's test images (into --output, else <model-dir>/predictions; an ISBI set gives test-masks.tif).")

  @OptionGroup(title: "Data") var data: DataOptions
  @OptionGroup(title: "Model") var model: ModelOptions
  @OptionGroup(title: "Model") var checkpoint: CheckpointOptions
  @OptionGroup(title: "Precision and device") var device: DeviceOptions
  @OptionGroup(title: "Evaluation and prediction") var batch: BatchOptions
  @OptionGroup(title: "Evaluation and prediction") var window: WindowOptions
  @OptionGroup(title: "Evaluation and prediction") var files: FileOptions
  @OptionGroup(title: "Evaluation and prediction") var overwrite: OverwriteOptions
  @OptionGroup(title: "Logging") var logging: LoggingOptions

  /// What predict reads and writes besides the data set.
  struct FileOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "Image files (PNG or TIFF, any size) or folders of them.")
    var input: [String] = []
    @Option(help: "Folder for the masks (and overlays and probabilities of --input); default <model-dir>/predictions.")
    var output: String?
    @Flag(help: "Also write the class probabilities (<name>-probabilities.tif, 16-bit, one page per class).")
    var probabilities = false

    func validate() throws {
      if !input.isEmpty, output == nil { throw ValidationError("--output: needed with --input (a folder for masks and overlays)") }
    }
  }

  func run() throws {
    let embedded = data.embedded
    var s = RunSettings()
    s.mode = .predict
    data.apply(to: &s)
    try model.apply(to: &s, embedded: embedded)
    checkpoint.apply(to: &s)
    batch.apply(to: &s, embedded: embedded)
    window.apply(to: &s)
    logging.apply(to: &s)
    s.training.compile = device.compile
    s.precision = try device.precision.resolved()
    s.predictInputs = files.input
    s.predictOutput = files.output.map { URL(fileURLWithPath: $0) }
    s.predictProbabilities = files.probabilities
    overwrite.apply(to: &s)
    try execute(s, device: device.device, profile: logging.profile)
  }
}

// MARK: - Running

/// Runs `settings` on `device`, printing to stdout (a progress bar on a terminal).
func execute(_ settings: RunSettings, device: DeviceChoice, profile: Bool, callbacks extra: [any TrainingCallback] = []) throws {
  // Under mpirun or srun: join the other ranks (Open MPI loaded now); alone, nothing changes.
  var parallel = try Distributed.start().map { try DataParallel(communicator: $0) }
  let device = parallel.map { device.onLocalRank($0.communicator.localRank) } ?? device
  let backend = try device.backend(precision: settings.precision)
  parallel = try parallel?.withDeviceSums(for: backend)
  let bar = ProgressBar()
  let callbacks: [any TrainingCallback] = (bar.isTerminal ? [bar] : []) + (profile ? [ProfilerCallback { print($0 + (convAlgorithmTable(backend).map { "\n\n" + $0 } ?? "")) }] : []) + extra
  let precision = PrecisionPolicy(settings.precision, on: backend)
  let gpu = backend as? CUDABackend
  try Runner(settings: settings, backend: backend, precision: precision, say: bar.say, callbacks: callbacks,
             deviceMemoryFree: gpu.map { gpu in { gpu.freeMemoryBytes } }, parallel: parallel, naming: \.commandLineName).run()
}
