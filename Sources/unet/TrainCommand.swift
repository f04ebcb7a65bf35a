import ArgumentParser
import Foundation
import SegCore
import SegNN
import SegTrain

/// `unet train`: the reference's main.py. With no --data-dir, trains a small U-Net on generated
/// EM-like data for a few minutes on 2 cores and prints its validation Dice.
struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train, evaluate and predict as the reference's main.py (with no --data-dir: a small model on generated EM-like data).")

  @Option(name: [.customLong("exec-mode"), .customLong("exec_mode")], help: "train, evaluate, predict, train_and_evaluate or train_and_predict.")
  var execMode = ExecMode.trainAndEvaluate
  @OptionGroup var options: RunOptions
  @OptionGroup var model: ModelOptions

  func run() throws {
    guard options.benchmark else { return try execute(mode: execMode, run: options, model: model) }
    var b = BenchmarkOptions()
    b.mode = execMode == .predict ? .predict : .train
    b.batchSize = options.batchSize ?? 1
    b.warmupSteps = options.warmupSteps
    b.steps = options.maxSteps ?? b.mode.defaultSteps
    b.seed = options.seed
    b.learningRate = options.learningRate ?? b.learningRate
    b.precision = try options.precision.resolved()
    try runBenchmark(b, model: model, device: options.device, output: nil, logDir: options.logDir, profile: options.profile)
  }
}

/// `unet evaluate`: scores the checkpoint in --model-dir.
struct EvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate", abstract: "Evaluate the checkpoint in --model-dir on the validation fold (or every labelled slice).")
  @OptionGroup var options: RunOptions
  @OptionGroup var model: ModelOptions
  @Option(help: "Also write the report as JSON (mean_dice, mean_iou, soft_dice, per_image, per_class) to this file.")
  var output: String?
  func run() throws {
    try execute(mode: .evaluate, run: options, model: model) { $0.evaluationJSON = output.map { URL(fileURLWithPath: $0) } }
  }
}

/// `unet predict`: writes masks of the test images with the checkpoint in --model-dir.
struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Predict masks: of image files (--input ... --output DIR: a mask and an overlay PNG each), or of the data set's test images (into --output, else <model-dir>/predictions; an ISBI set gives test-masks.tif).")
  @OptionGroup var options: RunOptions
  @OptionGroup var model: ModelOptions
  @Option(parsing: .upToNextOption, help: "Image files (PNG or TIFF, any size) or folders of them.")
  var input: [String] = []
  @Option(help: "Folder for the masks (and overlays and probabilities of --input); default <model-dir>/predictions.")
  var output: String?
  @Flag(help: "Also write the class probabilities (<name>-probabilities.tif, 16-bit, one page per class).")
  var probabilities = false
  func validate() throws {
    if !input.isEmpty, output == nil { throw ValidationError("--output: needed with --input (a folder for masks and overlays)") }
  }
  func run() throws {
    try execute(mode: .predict, run: options, model: model) { s in
      s.predictInputs = input
      s.predictOutput = output.map { URL(fileURLWithPath: $0) }
      s.predictProbabilities = probabilities
    }
  }
}

/// Runs a mode with the given flags, printing to stdout (a progress bar on a terminal).
func execute(mode: ExecMode, run: RunOptions, model: ModelOptions, adjust: (inout RunSettings) -> Void = { _ in }) throws {
  var settings = try run.settings(mode: mode, model: model)
  adjust(&settings)
  let backend = try run.device.backend(precision: settings.precision)
  Backends.default = backend
  let bar = ProgressBar()
  let callbacks: [any TrainingCallback] = (bar.isTerminal ? [bar] : []) + (run.profile ? [ProfilerCallback { print($0) }] : [])
  let precision = PrecisionPolicy(settings.precision, on: backend)
  try Runner(settings: settings, backend: backend, precision: precision, say: bar.say, callbacks: callbacks).run()
}
