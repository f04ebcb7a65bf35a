import ArgumentParser
import Foundation
import SegData
import SegTrain

// MARK: - Data

/// Where the images come from and the seed of every random choice (train, evaluate, predict).
struct DataOptions: ParsableArguments {
  @Option(name: [.customLong("data-dir"), .customLong("data_dir")], help: "ISBI-layout directory (train-volume.tif, train-labels.tif, test-volume.tif) or a folder set (images/, masks/, optional test/); without it, a generated EM-like set.")
  var dataDir: String?
  @Option(help: "isbi (train-volume.tif, train-labels.tif, test-volume.tif) or folder (images/, masks/, optional test/); detected when not given.")
  var dataset: DatasetKind?
  @Option(help: "Seed of every random choice: the generated data set and the folds; when training also the weights, tiles, augmentation and dropout.")
  var seed: UInt64 = 0

  /// No --data-dir: the small embedded model and data set, with their own defaults.
  var embedded: Bool { dataDir == nil }

  func apply(to s: inout RunSettings) {
    s.dataDir = dataDir.map { URL(fileURLWithPath: $0) }
    s.dataset = dataset
    s.training.seed = seed
  }
}

/// The cross-validation fold held out for evaluation (train, evaluate).
struct FoldOptions: ParsableArguments {
  @Option(parsing: .unconditional, help: "Cross-validation fold to hold out (none: train and evaluate on every slice; 0 without --data-dir).")
  var fold: Int?
  @Option(parsing: .unconditional, help: "Number of cross-validation folds.")
  var folds = 5

  func apply(to s: inout RunSettings, embedded: Bool) {
    s.fold = fold ?? (embedded ? 0 : nil)
    s.folds = folds
  }
}

/// How training tiles are cut, and by how many threads (train; `AugmentationFlags` augment them).
struct TrainingDataOptions: ParsableArguments {
  @Option(parsing: .unconditional, help: "Threads preparing training batches (0: on the training thread).")
  var workers = ProcessInfo.processInfo.activeProcessorCount
  @Option(name: [.customLong("input-mode"), .customLong("input_mode")], help: "overlap_tile (the paper: mirror-padded tiles) or resize_pad (NVIDIA: resize to the output size, zero-pad).")
  var inputMode = InputMode.overlapTile

  /// The most batch threads: far beyond any useful count, well below the threads a process may start.
  static let maxWorkers = 256

  func validate() throws {
    if workers < 0 { throw ValidationError("--workers: must be 0 or more, got \(workers)") }
    if workers > Self.maxWorkers {
      throw ValidationError("--workers: at most \(Self.maxWorkers) threads, got \(workers) (this machine has \(ProcessInfo.processInfo.activeProcessorCount) cores)")
    }
  }

  func apply(to s: inout RunSettings) {
    s.workers = workers
    s.inputMode = inputMode
  }
}

extension InputMode: ExpressibleByArgument {}
extension DatasetKind: ExpressibleByArgument {}
