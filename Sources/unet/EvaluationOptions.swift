import ArgumentParser
import Foundation
import SegTrain

// MARK: - Evaluation and prediction

/// How whole images are tiled when evaluating and predicting (train, evaluate, predict).
struct WindowOptions: ParsableArguments {
  @Option(parsing: .unconditional, help: "Overlap of neighbouring output tiles when predicting whole images, in [0, 1).")
  var overlap = 0.0
  @Option(help: "How overlapping tiles combine: mean or gaussian (weights falling off from the tile's centre).")
  var blending = SlidingWindow.Blending.mean
  @Flag(help: "Test-time augmentation: average the predictions of the four flips.")
  var tta = false

  func validate() throws {
    if !(0..<1).contains(overlap) { throw ValidationError("--overlap: must be in [0, 1), got \(overlap)") }
  }

  func apply(to s: inout RunSettings) { s.window = SlidingWindow(overlap: overlap, blending: blending, tta: tta) }
}

extension SlidingWindow.Blending: ExpressibleByArgument {}

// MARK: - Logging

/// The DLLogger file and the op profile (train, evaluate, predict, benchmark).
struct LoggingOptions: ParsableArguments {
  @Option(name: [.customLong("log-dir"), .customLong("log_dir")], help: "DLLogger JSON-lines file to append to.")
  var logDir: String?
  @Flag(help: "Print the time spent in each op kind, and in each op and output type, at the end.")
  var profile = false
  @Option(name: .customLong("profile-json"), help: "With benchmark: also write the profile (ops, op and output type, kernels) as JSON to this file; implies --profile.")
  var profileJSON: String?

  func apply(to s: inout RunSettings) { s.logFile = logDir.map { URL(fileURLWithPath: $0) } }
}

/// How often training logs (train).
struct TrainingLogOptions: ParsableArguments {
  @Option(name: [.customLong("log-every"), .customLong("log_every")], parsing: .unconditional, help: "Steps between log lines (100; 25 without --data-dir).")
  var logEvery: Int?

  func validate() throws {
    if let logEvery, logEvery < 1 { throw ValidationError("--log-every: must be at least 1, got \(logEvery)") }
  }

  func apply(to s: inout RunSettings, embedded: Bool) { s.training.logEvery = logEvery ?? (embedded ? 25 : 100) }
}

// MARK: - Files made before the run

/// Whether predictions may replace files that were there before the run (predict, train).
struct OverwriteOptions: ParsableArguments {
  @Flag(help: "Replace prediction files that exist before the run (the inputs themselves are never replaced).")
  var overwrite = false

  func apply(to s: inout RunSettings) { s.overwrite = overwrite }
}
