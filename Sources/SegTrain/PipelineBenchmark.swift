import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Pipeline benchmark

/// How fast the data pipeline alone makes training images: ISBI-sized synthetic slices (512 x 512),
/// NVIDIA's tile (572 in, 388 out), augmentation on. Not a test: a measurement to set beside the
/// training step's time.
public enum PipelineBenchmark {
  /// One measurement.
  public struct Result: Sendable, CustomStringConvertible {
    public let workers: Int
    public let batchSize: Int
    public let images: Int
    public let seconds: Double
    /// Images made per second, after the first batch (thread start-up) is excluded.
    public var imagesPerSecond: Double { Double(images) / max(seconds, 1e-9) }
    public var description: String {
      String(format: "pipeline: %d worker(s), batch %d: %d images in %.2f s, %.1f img/s", workers, batchSize, images, seconds, imagesPerSecond)
    }
  }

  /// Times `batches` batches of `batchSize` after a first, untimed one, made by `workers` threads
  /// from `slices` synthetic slices of `sliceSize` (generated once, before timing).
  public static func run(
    workers: Int, batches: Int = 16, batchSize: Int = 1, slices: Int = 6, sliceSize: Int = 512,
    config: UNetConfig = UNetConfig(), augmentation: AugmentationOptions = .all,
    inputMode: InputMode = .overlapTile, seed: UInt64 = 0
  ) throws -> Result {
    guard batches >= 1 else { throw SettingError(.batches, value: batches, "must be at least 1") }
    let data = SyntheticEM.generate(count: max(slices, 1), size: sliceSize, seed: seed)
    var options = PipelineOptions()
    options.batchSize = batchSize
    options.workers = workers
    options.augmentation = augmentation
    options.inputMode = inputMode
    options.seed = seed
    options.prefetch = max(3, workers + 1)
    let pipeline = try TrainingPipeline(slices: data, config: config, options: options)
    defer { pipeline.stop() }
    _ = try pipeline.next()
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<batches { _ = try pipeline.next() }
    let elapsed = clock.now - start
    return Result(workers: workers, batchSize: batchSize, images: batches * batchSize, seconds: elapsed.seconds)
  }
}
