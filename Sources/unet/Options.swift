import ArgumentParser
import Foundation
import SegData
import SegNN
import SegTrain

// MARK: - Model options

/// The U-Net's shape. Unset options take the reference's values with --data-dir, and the small
/// embedded model's without.
struct ModelOptions: ParsableArguments {
  @Option(name: [.customLong("input-channels"), .customLong("input_channels")], help: "Image channels: 1 (gray) or 3 (RGB); detected from a folder data set's images when not given.")
  var inputChannels: Int?
  @Option(help: "Classes, background included (2).")
  var classes: Int?
  @Option(name: [.customLong("base-filters"), .customLong("base_filters")], help: "Filters of the top level (64; 16 without --data-dir).")
  var baseFilters: Int?
  @Option(help: "Number of 2x2 poolings (4; 3 without --data-dir).")
  var depth: Int?
  @Option(help: "valid: unpadded convs, output smaller than input, as NVIDIA (default); same: output = input (default without --data-dir).")
  var padding: UNetConfig.Padding?
  @Option(name: [.customLong("upconv-kernel"), .customLong("upconv_kernel")], help: "Kernel of the stride-2 transposed convs: 3 (NVIDIA) or 2 (the paper).")
  var upconvKernel: Int?
  @Option(name: [.customLong("input-size"), .customLong("input_size")], help: "Side of the input tile (572; 96 without --data-dir).")
  var inputSize: Int?

  /// True when any option was given.
  var given: Bool {
    [inputChannels, classes, baseFilters, depth, upconvKernel, inputSize].contains { $0 != nil } || padding != nil
  }

  /// The configuration, with the embedded model's defaults when `embedded`.
  func config(embedded: Bool) throws -> UNetConfig {
    var c = UNetConfig()
    if embedded {
      (c.baseFilters, c.depth, c.padding, c.inputSize) = (16, 3, .same, 96)
    }
    c.inputChannels = inputChannels ?? c.inputChannels
    c.classes = classes ?? c.classes
    c.baseFilters = baseFilters ?? c.baseFilters
    c.depth = depth ?? c.depth
    c.padding = padding ?? c.padding
    c.upconvKernel = upconvKernel ?? c.upconvKernel
    c.inputSize = inputSize ?? c.inputSize
    do { try c.validate() } catch let e as ModelConfigError { throw ValidationError(e.description) }
    return c
  }
}

extension UNetConfig.Padding: ExpressibleByArgument {}

// MARK: - Run options

/// The reference's flags, in kebab-case and in its snake_case spelling.
struct RunOptions: ParsableArguments {
  @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "ISBI-layout directory (train-volume.tif, train-labels.tif, test-volume.tif); without it, a generated EM-like set.")
  var dataDir: String?
  @Option(help: "isbi (train-volume.tif, train-labels.tif, test-volume.tif) or folder (images/, masks/, optional test/); detected when not given.")
  var dataset: DatasetKind?
  @Option(name: [.customLong("model-dir"), .customLong("model_dir")], help: "Checkpoint and predictions directory.")
  var modelDir: String?
  @Option(name: [.customLong("log-dir"), .customLong("log_dir")], help: "DLLogger JSON-lines file to append to.")
  var logDir: String?
  @Option(name: [.customLong("batch-size"), .customLong("batch_size")], help: "Images per step (1; 4 without --data-dir).")
  var batchSize: Int?
  @Option(name: [.customLong("learning-rate"), .customLong("learning_rate")], help: "Adam's learning rate (1e-4; 1e-3 without --data-dir).")
  var learningRate: Double?
  @Option(help: "Cross-validation fold to hold out (none: train and evaluate on every slice; 0 without --data-dir).")
  var fold: Int?
  @Option(help: "Number of cross-validation folds.")
  var folds = 5
  @Option(name: [.customLong("max-steps"), .customLong("max_steps")], help: "Training steps (1000; 300 without --data-dir).")
  var maxSteps: Int?
  @Option(name: [.customLong("weight-decay"), .customLong("weight_decay")], help: "L2 weight decay.")
  var weightDecay = 5e-4
  @Option(name: [.customLong("log-every"), .customLong("log_every")], help: "Steps between log lines (100; 25 without --data-dir).")
  var logEvery: Int?
  @Option(name: [.customLong("evaluate-every"), .customLong("evaluate_every")], help: "Steps between evaluations while training (0: at the end only).")
  var evaluateEvery = 0
  @Option(name: [.customLong("warmup-steps"), .customLong("warmup_steps")], help: "Benchmark steps excluded from timing.")
  var warmupSteps = 200
  @Option(help: "Seed of every random choice.")
  var seed: UInt64 = 0
  @Flag(help: "Augment training tiles: flips, 90-degree rotations, crop-and-zoom, brightness, contrast, noise, elastic deformation.")
  var augment = false
  @Option(help: "Threads preparing training batches (0: on the training thread).")
  var workers = ProcessInfo.processInfo.activeProcessorCount
  @Option(name: [.customLong("input-mode"), .customLong("input_mode")], help: "overlap_tile (the paper: mirror-padded tiles) or resize_pad (NVIDIA: resize to the output size, zero-pad).")
  var inputMode = InputMode.overlapTile
  @Flag(help: "Time the steps instead of training to a score, as unet benchmark (--exec-mode predict: inference steps; else training steps), with the reference's model for unset model options.")
  var benchmark = false
  @Option(help: "Overlap of neighbouring output tiles when predicting whole images, in [0, 1).")
  var overlap = 0.0
  @Option(help: "How overlapping tiles combine: mean or gaussian (weights falling off from the tile's centre).")
  var blending = SlidingWindow.Blending.mean
  @Flag(help: "Test-time augmentation: average the predictions of the four flips.")
  var tta = false
  @Flag(help: "Print the time spent in each op kind, and in each op and output type, at the end.")
  var profile = false
  @Flag(name: [.customLong("resume-training"), .customLong("resume_training")], help: "Continue the checkpoint in --model-dir.")
  var resumeTraining = false
  @Option(help: "cpu (oneDNN), reference (plain Swift, slow) or cuda.")
  var device = DeviceChoice(.cpu)
  @OptionGroup var precision: PrecisionOptions
  @Flag(help: "Compile the step (the role of XLA).")
  var xla = false

  func validate() throws {
    if xla { throw ValidationError("--xla: not yet available on this build (the graph compiler is not built yet)") }
    if warmupSteps < 0 { throw ValidationError("--warmup-steps: must be 0 or more, got \(warmupSteps)") }
    for (flag, value) in [("--batch-size", batchSize), ("--max-steps", maxSteps), ("--log-every", logEvery)] {
      if let value, value < 1 { throw ValidationError("\(flag): must be at least 1, got \(value)") }
    }
    if let lr = learningRate, !(lr > 0) { throw ValidationError("--learning-rate: must be positive, got \(lr)") }
    if evaluateEvery < 0 { throw ValidationError("--evaluate-every: must be 0 or more") }
    if workers < 0 { throw ValidationError("--workers: must be 0 or more") }
    if !(0..<1).contains(overlap) { throw ValidationError("--overlap: must be in [0, 1), got \(overlap)") }
  }

  /// The run's settings for `mode`, with the embedded defaults when there is no --data-dir.
  func settings(mode: ExecMode, model: ModelOptions) throws -> RunSettings {
    let embedded = dataDir == nil
    var s = RunSettings()
    s.mode = mode
    s.dataDir = dataDir.map { URL(fileURLWithPath: $0) }
    s.dataset = dataset
    s.modelDir = modelDir.map { URL(fileURLWithPath: $0) }
    s.logFile = logDir.map { URL(fileURLWithPath: $0) }
    s.model = try model.config(embedded: embedded)
    s.modelGiven = model.given
    s.inputChannelsGiven = model.inputChannels != nil
    s.training.batchSize = batchSize ?? (embedded ? 4 : 1)
    s.training.learningRate = learningRate ?? (embedded ? 1e-3 : 1e-4)
    s.training.maxSteps = maxSteps ?? (embedded ? 300 : 1000)
    s.training.logEvery = logEvery ?? (embedded ? 25 : 100)
    s.training.weightDecay = weightDecay
    s.training.seed = seed
    s.training.augment = augment
    s.precision = try precision.resolved()
    s.fold = fold ?? (embedded ? 0 : nil)
    s.folds = folds
    s.evaluateEvery = evaluateEvery
    s.resume = resumeTraining
    s.inputMode = inputMode
    s.workers = workers
    s.window = SlidingWindow(overlap: overlap, blending: blending, tta: tta)
    return s
  }
}

extension ExecMode: ExpressibleByArgument {}
extension SlidingWindow.Blending: ExpressibleByArgument {}
extension InputMode: ExpressibleByArgument {}
extension DatasetKind: ExpressibleByArgument {}
