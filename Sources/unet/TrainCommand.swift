import ArgumentParser
import Foundation
import SegCore
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

  func run() throws { try execute(mode: execMode, run: options, model: model) }
}

/// `unet evaluate`: scores the checkpoint in --model-dir.
struct EvaluateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "evaluate", abstract: "Evaluate the checkpoint in --model-dir on the validation fold (or every labelled slice).")
  @OptionGroup var options: RunOptions
  @OptionGroup var model: ModelOptions
  @Option(help: "Also write the report as JSON (mean_dice, mean_iou, soft_dice, per_image, per_class) to this file.")
  var output: String?
  func run() throws { try execute(mode: .evaluate, run: options, model: model, evaluationJSON: output) }
}

/// `unet predict`: writes masks of the test images with the checkpoint in --model-dir.
struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict", abstract: "Predict masks of the test volume into <model-dir>/predictions/test-masks.tif.")
  @OptionGroup var options: RunOptions
  @OptionGroup var model: ModelOptions
  func run() throws { try execute(mode: .predict, run: options, model: model) }
}

/// Runs a mode with the given flags, printing to stdout (a progress bar on a terminal).
func execute(mode: ExecMode, run: RunOptions, model: ModelOptions, evaluationJSON: String? = nil) throws {
  var settings = try run.settings(mode: mode, model: model)
  settings.evaluationJSON = evaluationJSON.map { URL(fileURLWithPath: $0) }
  let backend = try run.device.backend()
  Backends.default = backend
  let bar = ProgressBar()
  let runner = Runner(settings: settings, backend: backend, say: bar.say)
  if bar.isTerminal { runner.progress = bar.update }
  let profiler = run.profile ? OpProfiler() : nil
  OpProfiler.active = profiler
  try runner.run()
  bar.finish()
  if let profiler { print(profiler.table()) }
}
