import ArgumentParser
import Foundation
import SegData
import SegTrain

/// `unet data`: data-set tools.
struct DataCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "data", abstract: "Data-set tools.", subcommands: [SynthCommand.self])
}

/// `unet data synth`: writes an ISBI-2012-style data set of generated EM-like slices.
struct SynthCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "synth",
    abstract: "Write train-volume.tif, train-labels.tif and test-volume.tif of generated EM-like slices (255 = cell interior, 0 = membrane).")

  @Option(help: "Directory to write the three TIFF stacks into (created if missing).")
  var output: String
  @Option(parsing: .unconditional, help: "Side of each slice in pixels.")
  var size = 512
  @Option(name: [.customLong("train-count"), .customLong("train_count")], parsing: .unconditional, help: "Labelled training slices.")
  var trainCount = 30
  @Option(name: [.customLong("test-count"), .customLong("test_count")], parsing: .unconditional, help: "Unlabelled test slices.")
  var testCount = 30
  @Option(help: "Seed of the generator; the same seed gives the same files.")
  var seed: UInt64 = 0

  func validate() throws {
    guard size >= 16 else { throw ValidationError("--size: must be at least 16") }
    guard size <= SyntheticEM.maxSize else { throw ValidationError("--size: at most \(SyntheticEM.maxSize), got \(size)") }
    guard trainCount >= 1, testCount >= 1 else { throw ValidationError("--train-count and --test-count: must be at least 1") }
    for (flag, count) in [("--train-count", trainCount), ("--test-count", testCount)] where Double(count) * Double(size * size) > Double(SyntheticEM.maxStackBytes) {
      throw ValidationError("\(flag) \(count) with --size \(size): the stack would exceed the 4 GiB a TIFF file holds; use fewer or smaller slices")
    }
    if let available = AvailableMemory.host(), let refusal = SynthCommand.memoryRefusal(count: trainCount + testCount, size: size, available: available) {
      throw ValidationError(refusal)
    }
  }

  /// Why `count` slices of `size` cannot be made in `available` bytes, with the estimate and the
  /// largest --size that fits; nil when they can.
  static func memoryRefusal(count: Int, size: Int, available: Int) -> String? {
    let need = SyntheticEM.bytesNeeded(count: count, size: size)
    guard need > available else { return nil }
    // bytesNeeded grows with the size: the largest that fits, by bisection.
    var (lo, hi) = (0, size)
    while lo < hi {
      let mid = (lo + hi + 1) / 2
      if SyntheticEM.bytesNeeded(count: count, size: mid) <= available { lo = mid } else { hi = mid - 1 }
    }
    let largest = lo >= 16 ? "the largest --size that fits is about \(lo)" : "not even --size 16 fits: use fewer slices"
    return "--size \(size): \(count) slices need about \(need >> 20) MiB, more than the \(available >> 20) MiB of available memory; \(largest)"
  }

  func run() throws {
    let dir = URL(fileURLWithPath: output)
    try ISBIDataset.writeSynthetic(directory: dir, size: size, trainCount: trainCount, testCount: testCount, seed: seed)
    print("unet: wrote \(trainCount) training and \(testCount) test slices of \(size)x\(size) to \(dir.path)")
  }
}
