import Foundation
import SegData
import SegNN

// MARK: - Execution modes

/// What a run does, as the reference's `--exec_mode`.
public enum ExecMode: String, CaseIterable, Sendable {
  case train, evaluate, predict
  case trainAndEvaluate = "train_and_evaluate"
  case trainAndPredict = "train_and_predict"

  public var trains: Bool { self == .train || self == .trainAndEvaluate || self == .trainAndPredict }
  public var evaluates: Bool { self == .evaluate || self == .trainAndEvaluate }
  public var predicts: Bool { self == .predict || self == .trainAndPredict }
}

// MARK: - Settings

/// Everything a run needs, as the command line gives it.
public struct RunSettings {
  public var mode = ExecMode.trainAndEvaluate
  /// An ISBI-layout or images/ + masks/ directory; nil generates the embedded synthetic set.
  public var dataDir: URL?
  /// The data set's layout; nil detects it.
  public var dataset: DatasetKind?
  /// Where checkpoints and predictions go; nil keeps nothing (training only).
  public var modelDir: URL?
  /// A DLLogger JSON-lines file (the reference's --log_dir is a file path too).
  public var logFile: URL?
  /// The model to train from scratch; evaluate, predict and resumed runs use the checkpoint's.
  public var model = UNetConfig()
  /// True when the model options were given on the command line (then a resumed checkpoint must match).
  public var modelGiven = false
  /// True when --input-channels was given; otherwise a folder data set's files decide (3 when any
  /// image is RGB), or the checkpoint's model.
  public var inputChannelsGiven = false
  public var training = TrainingOptions()
  /// The arithmetic asked for; the caller resolves it once against the backend into the
  /// `PrecisionPolicy` the `Runner` takes.
  public var precision = Precision.fp32
  /// Cross-validation fold; nil trains and evaluates on every labelled slice, as the reference.
  public var fold: Int?
  public var folds = 5
  /// Steps between evaluations during training (0: only at the end).
  public var evaluateEvery = 0
  /// Steps between checkpoints besides those after evaluations and at the end (0: none).
  public var checkpointEvery = 0
  /// Step-numbered checkpoints kept besides the latest, and the best by Dice; nil keeps only the latest.
  public var keepCheckpoints: Int?
  public var resume = false
  /// How training tiles are cut, and by how many threads (0: on the training thread).
  public var inputMode = InputMode.overlapTile
  /// The augmentations of training tiles (`.none`: none); a resumed run takes its checkpoint's.
  public var augmentation = AugmentationOptions.none
  /// True when the command line chose the augmentations or a magnitude (then a resumed
  /// checkpoint's must be the same).
  public var augmentationGiven = false
  public var workers = ProcessInfo.processInfo.activeProcessorCount
  /// How evaluation and prediction tile whole images.
  public var window = SlidingWindow()
  /// Image files or folders to predict instead of the data set's test images, into `predictOutput`.
  public var predictInputs: [String] = []
  public var predictOutput: URL?
  /// Whether predict may replace files that existed before the run (never its inputs).
  public var overwrite = false
  /// Whether predict also writes class probabilities.
  public var predictProbabilities = false
  /// Where evaluate writes its JSON report (mean_dice, mean_iou, soft_dice, per_image, ...).
  public var evaluationJSON: URL?
  /// Where the evaluate mode draws its worst and best images (`ContactSheet`); nil draws none.
  public var contactSheet: URL?
  /// Records the first `steps` updates (weights, batches, dropout masks, losses) into
  /// `directory` for a step-by-step comparison with another framework (`StepRecorder`).
  public var dumpSteps: (directory: URL, steps: Int)?
  /// The embedded data set: labelled slices, their side, and unlabelled test slices.
  public var syntheticSlices = 15
  public var syntheticSize = 192
  public var syntheticTestSlices = 3

  public init() {}

  /// The checkpoint inside `modelDir`.
  public var checkpointURL: URL? { modelDir?.appendingPathComponent("checkpoint.safetensors") }
  /// Where predict writes the test images' masks: --output when given, else as the reference,
  /// <model-dir>/predictions (test-masks.tif for an ISBI set).
  public var predictionsDirectory: URL? { predictOutput ?? modelDir?.appendingPathComponent("predictions") }
}
