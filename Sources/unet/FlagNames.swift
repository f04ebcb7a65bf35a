import ArgumentParser
import SegCore

// MARK: - The libraries' settings as flags

extension Setting {
  /// The flag that sets this setting on the command line; nil for settings no flag sets on its
  /// own (they keep the libraries' names). The switch is exhaustive so that a new setting cannot
  /// reach a user without a decision about its flag.
  var flag: String? {
    switch self {
    case .fold: return "--fold"
    case .folds: return "--folds"
    case .workers: return "--workers"
    case .batches: return "--batches"
    case .prefetch, .rank: return nil
    case .dropout: return "--dropout"
    case .inputChannels: return "--input-channels"
    case .classes: return "--classes"
    case .baseFilters: return "--base-filters"
    case .depth: return "--depth"
    case .upconvKernel: return "--upconv-kernel"
    case .inputSize: return "--input-size"
    case .batchSize: return "--batch-size"
    case .warmupSteps: return "--warmup-steps"
    case .maxSteps: return "--max-steps"
    case .precision: return "--precision"
    case .learningRate: return "--learning-rate"
    case .weightDecay: return "--weight-decay"
    case .weightInitializer: return "--init"
    case .learningRateWarmupSteps: return "--lr-warmup-steps"
    case .headBias: return "--head-bias"
    case .dumpSteps: return "--dump-steps"
    case .overwrite: return "--overwrite"
    case .modelDirectory: return "--model-dir"
    case .resume: return "--resume-training"
    case .keepCheckpoints: return "--keep-checkpoints"
    case .overlap: return "--overlap"
    case .evaluationOutput, .predictionOutput: return "--output"
    case .predictionInputs: return "--input"
    case .augmentations: return "--augment"
    case .maxCropFraction: return "--zoom-range"
    case .maxBrightnessDelta: return "--brightness-range"
    case .contrastRange: return "--contrast-range"
    case .maxNoiseStd: return "--noise-std"
    case .elasticSigma: return "--elastic-sigma"
    case .elasticGrid: return "--elastic-grid"
    case .flipXProbability, .flipYProbability, .cropProbability, .brightnessProbability, .contrastProbability,
      .noiseProbability, .elasticProbability:
      return nil
    }
  }

  /// How the command line prints the setting: its flag, or "augmentation <field>" and the like.
  var commandLineName: String {
    if let flag { return flag }
    switch self {
    case .prefetch, .rank: return "pipeline \(rawValue)"
    case .dropout: return "model dropout"
    default: return "augmentation \(rawValue)"
    }
  }
}

extension SettingError {
  /// The message with flags for settings, e.g. "--fold 5: out of range; with 5 folds it must be 0...4".
  var commandLineDescription: String { description(naming: \.commandLineName) }
}

// MARK: - Errors

/// An error the tool prints as it is ("Error: " and the text), exiting with status 1.
struct CommandLineError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// The error a user sees: a library's `SettingError` in the words of the command line.
func commandLineError(_ error: any Error) -> any Error {
  guard let e = error as? SettingError else { return error }
  return CommandLineError(e.commandLineDescription)
}
