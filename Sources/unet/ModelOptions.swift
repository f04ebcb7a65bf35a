import ArgumentParser
import Foundation
import SegCore
import SegNN
import SegTrain

// MARK: - Model

/// The U-Net's shape. Unset options take the reference's values with --data-dir, and the small
/// embedded model's without.
struct ModelOptions: ParsableArguments {
  @Option(name: [.customLong("input-channels"), .customLong("input_channels")], parsing: .unconditional, help: "Image channels: 1 (gray) or 3 (RGB); detected from a folder data set's images when not given.")
  var inputChannels: Int?
  @Option(parsing: .unconditional, help: "Classes, background included (2).")
  var classes: Int?
  @Option(name: [.customLong("base-filters"), .customLong("base_filters")], parsing: .unconditional, help: "Filters of the top level (64; 16 without --data-dir).")
  var baseFilters: Int?
  @Option(parsing: .unconditional, help: "Number of 2x2 poolings (4; 3 without --data-dir).")
  var depth: Int?
  @Option(help: "valid: unpadded convs, output smaller than input, as NVIDIA (default); same: output = input (default without --data-dir).")
  var padding: UNetConfig.Padding?
  @Option(name: [.customLong("upconv-kernel"), .customLong("upconv_kernel")], parsing: .unconditional, help: "Kernel of the stride-2 transposed convs: 3 (NVIDIA) or 2 (the paper).")
  var upconvKernel: Int?
  @Option(name: [.customLong("input-size"), .customLong("input_size")], parsing: .unconditional, help: "Side of the input tile (572; 96 without --data-dir).")
  var inputSize: Int?
  @Option(parsing: .unconditional, help: "Dropout rate after the bottleneck's convs while training (0.5; 0 turns it off).")
  var dropout: Double?

  /// True when any option was given.
  var given: Bool {
    [inputChannels, classes, baseFilters, depth, upconvKernel, inputSize].contains { $0 != nil } || padding != nil || dropout != nil
  }

  /// The configuration, with the embedded model's defaults when `embedded`; a bad value throws
  /// the model's `SettingError` (the tool's main names its flag).
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
    c.dropout = dropout ?? c.dropout
    try c.validate()
    return c
  }

  func apply(to s: inout RunSettings, embedded: Bool) throws {
    s.model = try config(embedded: embedded)
    s.modelGiven = given
    s.inputChannelsGiven = inputChannels != nil
  }
}

/// Where the checkpoint lives (train, evaluate, predict).
struct CheckpointOptions: ParsableArguments {
  @Option(name: [.customLong("model-dir"), .customLong("model_dir")], help: "Checkpoint and predictions directory.")
  var modelDir: String?

  func apply(to s: inout RunSettings) { s.modelDir = modelDir.map { URL(fileURLWithPath: $0) } }
}

extension UNetConfig.Padding: ExpressibleByArgument {}
