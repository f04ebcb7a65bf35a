import ArgumentParser
import Foundation
import SegTrain

// MARK: - TensorBoard

/// Where training writes TensorBoard event files (train).
struct TensorBoardOptions: ParsableArguments {
  @Option(help: "Write TensorBoard event files (losses, learning rate, throughput, evaluation scores, a validation picture) into this directory.")
  var tensorboard: String?

  /// The callback writing them, if asked for.
  var callbacks: [any TrainingCallback] {
    tensorboard.map { [TensorBoardCallback(directory: URL(fileURLWithPath: $0))] } ?? []
  }
}
