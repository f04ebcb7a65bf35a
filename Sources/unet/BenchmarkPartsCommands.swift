import ArgumentParser
import Foundation
import SegCPU
import SegData
import SegTrain

// MARK: - JSON

/// Prints `value` as JSON and writes it to `output` when given.
private func emitJSON<T: Encodable>(_ value: T, to output: String?) throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
  let json = try encoder.encode(value)
  print(String(decoding: json, as: UTF8.self))
  if let output {
    do { try json.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
      throw ValidationError("--output \(output): cannot write (\(error.localizedDescription))")
    }
  }
}

// MARK: - unet benchmark kernels

/// `unet benchmark kernels`: the CPU backend's convolutions against a 4096^3 sgemm.
struct BenchmarkKernelsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kernels",
    abstract: "Time a 4096^3 sgemm (the ceiling) and conv forward, backward-data and backward-weights (each direct and Winograd) at three U-Net layer shapes.")

  @Option(help: "Timed repetitions of each kernel (the best and the median are reported).")
  var repeats = 3
  @Option(help: "wall (elapsed time) or cpu (the process's CPU time: on a loaded machine, pinned to one core with taskset).")
  var clock = BenchmarkClock.wall
  @Flag(help: "Run the convolutions as the compiled step (--xla) does: outputs and scratch (Winograd's transforms, reorders) in an arena whose pages are already mapped, not in fresh buffers.")
  var arena = false
  @Option(help: "Also write the JSON to this file.")
  var output: String?

  func run() throws { try emitJSON(try KernelBenchmark.run(repeats: repeats, clock: clock, arena: arena), to: output) }
}

// MARK: - unet benchmark pipeline

/// `unet benchmark pipeline`: training batches per second of the data pipeline alone.
struct BenchmarkPipelineCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pipeline",
    abstract: "Time the training pipeline alone on ISBI-sized synthetic slices (512x512, 572->388 tiles).")

  @Option(help: "Worker threads.")
  var workers = ProcessInfo.processInfo.activeProcessorCount
  @Option(help: "Timed batches (after one untimed).")
  var batches = 16
  @Option(name: [.customLong("batch-size"), .customLong("batch_size")], help: "Images per batch.")
  var batchSize = 1
  @OptionGroup(title: "Augmentation (as unet train's; without --augment, all seven, the most work a batch can take)") var augmentation: AugmentationFlags
  @Flag(name: .customLong("no-augment"), help: "No augmentation (--augment none).")
  var noAugment = false
  @Option(help: "Also write the JSON to this file.")
  var output: String?

  /// The measurement as JSON.
  struct Report: Encodable {
    let workers, batchSize, images: Int
    let seconds, imagesPerSecond: Double
    let augment: Bool
    /// The augmentations timed, comma-separated ("none" when off).
    let augmentations: String
  }

  func validate() throws {
    guard workers >= 0, batches >= 1, batchSize >= 1 else {
      throw ValidationError("--workers must be 0 or more, --batches and --batch-size at least 1")
    }
    if noAugment, augmentation.given { throw ValidationError("--no-augment: give it alone, without --augment or a magnitude") }
  }

  func run() throws {
    let options = noAugment ? AugmentationOptions.none : try augmentation.options(absent: AugmentationKind.allCases.map(\.rawValue).joined(separator: ","))
    let r = try PipelineBenchmark.run(workers: workers, batches: batches, batchSize: batchSize, augmentation: options)
    try emitJSON(Report(workers: r.workers, batchSize: r.batchSize, images: r.images, seconds: r.seconds,
                        imagesPerSecond: r.imagesPerSecond, augment: !options.isEmpty,
                        augmentations: AugmentationKind.list(options.kinds)), to: output)
  }
}
