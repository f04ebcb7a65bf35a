import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

@Suite struct PipelineTests {
  /// A valid depth-1 U-Net: 28x28 tiles give 12x12 outputs (margin 8).
  static func config() -> UNetConfig {
    var c = UNetConfig()
    (c.depth, c.baseFilters, c.inputSize) = (1, 2, 28)
    return c
  }

  /// Three 24x24 slices: 2 x 2 windows each, 12 samples per epoch.
  static let slices = SyntheticEM.generate(count: 3, size: 24, seed: 4)

  static func options(workers: Int, batch: Int = 2, augment: Bool = true) -> PipelineOptions {
    var o = PipelineOptions()
    (o.workers, o.batchSize, o.seed) = (workers, batch, 11)
    if augment {
      var a = AugmentationOptions.all
      (a.elasticProbability, a.noiseProbability, a.elasticSigma) = (1, 1, 3)
      o.augmentation = a
    }
    return o
  }

  static func batches(_ p: TrainingPipeline, _ n: Int) throws -> [HostBatch] { try (0..<n).map { _ in try p.next() } }

  // MARK: Reproducibility

  @Test func workerCountDoesNotChangeTheBatches() throws {
    #expect(PipelineTests.config().outputSize == 12)
    var runs: [[HostBatch]] = []
    for workers in [0, 1, 2] {
      let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: PipelineTests.options(workers: workers))
      runs.append(try PipelineTests.batches(p, 9))  // past the end of the first epoch (6 batches)
    }
    for run in runs[1...] {
      for (a, b) in zip(runs[0], run) {
        #expect(a.index == b.index && a.samples == b.samples)
        #expect(a.images == b.images && a.targets == b.targets, "batch \(a.index)")
      }
    }
    #expect(runs[0].map(\.index) == Array(0..<9))
    #expect(runs[0][0].imageShape == [2, 28, 28, 1] && runs[0][0].targetShape == [2, 12, 12, 2])
  }

  @Test func resumingStartsAtTheRequestedBatch() throws {
    let all = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: PipelineTests.options(workers: 1))
    let resumed = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: PipelineTests.options(workers: 2), firstBatch: 4)
    let a = try PipelineTests.batches(all, 6), b = try PipelineTests.batches(resumed, 2)
    #expect(a[4].images == b[0].images && a[5].targets == b[1].targets && b[1].index == 5)
  }

  @Test func epochsVisitEverySampleOnceInNewOrdersWithNewAugmentation() throws {
    let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: PipelineTests.options(workers: 2))
    let b = try PipelineTests.batches(p, 12)
    let first = b[0..<6].flatMap(\.samples), second = b[6..<12].flatMap(\.samples)
    #expect(first.allSatisfy { $0.epoch == 0 } && second.allSatisfy { $0.epoch == 1 })
    #expect(first.map(\.id).sorted() == Array(0..<12) && second.map(\.id).sorted() == Array(0..<12))
    #expect(first.map(\.id) != second.map(\.id), "a new order each epoch")
    // The same sample looks different in the next epoch.
    let id = first[0].id, j = second.firstIndex { $0.id == id }!
    let s = 28 * 28
    #expect(Array(b[0].images[0..<s]) != Array(b[6 + j / 2].images[(j % 2) * s..<(j % 2 + 1) * s]))
  }

  @Test func ranksPartitionAnEpoch() throws {
    for world in [3, 5] {
      var seen: [Int] = []
      for rank in 0..<world {
        var o = PipelineTests.options(workers: 1, batch: 1, augment: false)
        (o.rank, o.worldSize) = (rank, world)
        let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: o)
        #expect(p.samplesPerEpoch == 12 / world)
        let ids = try PipelineTests.batches(p, p.samplesPerEpoch).flatMap(\.samples).map { s -> Int in
          #expect(s.epoch == 0)
          return s.id
        }
        seen += ids
      }
      #expect(Set(seen).count == seen.count, "ranks share no sample (\(world) ranks)")
      #expect(seen.count == 12 / world * world)
    }
  }

  // MARK: Queue and threads

  @Test func prefetchIsBoundedAndDroppingJoinsTheWorkers() throws {
    var o = PipelineTests.options(workers: 3, batch: 1)
    o.prefetch = 2
    var pipeline: TrainingPipeline? = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: o)
    let monitor = pipeline!.monitor
    func waitForReady(_ n: Int) {
      let deadline = Date().addingTimeInterval(30)
      while monitor.readyBatches < n && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
    }
    waitForReady(2)
    Thread.sleep(forTimeInterval: 0.1)  // time for an unbounded queue to overfill
    #expect(monitor.readyBatches == 2 && monitor.mostAhead == 2)
    #expect(try pipeline!.next().index == 0)
    waitForReady(2)
    Thread.sleep(forTimeInterval: 0.05)
    #expect(monitor.readyBatches == 2 && monitor.mostAhead == 2)
    #expect(monitor.runningWorkers == 3)
    pipeline = nil
    #expect(monitor.runningWorkers == 0, "deinit waited for every worker")
  }

  @Test func stoppedPipelinesThrow() throws {
    let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: PipelineTests.options(workers: 2))
    _ = try p.next()
    p.stop()
    #expect(p.monitor.runningWorkers == 0)
    #expect(throws: PipelineError.stopped) { try p.next() }
  }

  // MARK: Geometry

  @Test func unaugmentedOverlapTilesAreTheSamplersTiles() throws {
    var o = PipelineTests.options(workers: 0, batch: 1, augment: false)
    o.jitter = false
    let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: o)
    var corners = Set<[Int]>()
    for b in try PipelineTests.batches(p, 12) {
      let s = b.samples[0], slice = PipelineTests.slices[s.slice]
      corners.insert([s.x, s.y])
      #expect(b.images == TileSampler.imageTile(slice, x: s.x, y: s.y, window: 12, size: 28).values)
      let label = TileSampler.labelTile(slice, x: s.x, y: s.y, window: 12, size: 12)
      #expect(b.targets == label.classes.flatMap { $0 == 1 ? [0, 1] : [1, 0] as [Float] })
    }
    #expect(corners == [[0, 0], [12, 0], [0, 12], [12, 12]], "windows from edge to edge")
  }

  @Test func augmentedTargetsStayOneHot() throws {
    let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: PipelineTests.options(workers: 2))
    for b in try PipelineTests.batches(p, 6) {
      #expect(b.images.allSatisfy { $0 >= -1 && $0 <= 1 })
      for i in stride(from: 0, to: b.targets.count, by: 2) {
        #expect(b.targets[i] + b.targets[i + 1] == 1 && b.targets[i] * b.targets[i + 1] == 0)
      }
    }
  }

  @Test func resizePadResizesThenPadsWithZeros() throws {
    // A 24x24 slice halves to 12x12: each output pixel averages a 2x2 block (half-pixel centres).
    let slice = PipelineTests.slices[0]
    let (image, label) = TileSampler.resizePadTiles(slice, outputSize: 12, inputSize: 28)
    func scaled(_ y: Int, _ x: Int) -> Float { Float(slice.image[y * 24 + x]) / 127.5 - 1 }
    for (ty, tx) in [(0, 0), (5, 7), (11, 11)] {
      let (y, x) = (2 * ty, 2 * tx)
      let top: Float = scaled(y, x) + scaled(y, x + 1)
      let bottom: Float = scaled(y + 1, x) + scaled(y + 1, x + 1)
      let mean = (top + bottom) / 4
      #expect(abs(image.values[(ty + 8) * 28 + tx + 8] - mean) < 1e-5)
      #expect(label.classes[(ty + 8) * 28 + tx + 8] == slice.label[(2 * ty + 1) * 24 + 2 * tx + 1])
    }
    #expect((0..<28).allSatisfy { image.values[$0] == 0 && image.values[27 * 28 + $0] == 0 && label.classes[$0 * 28] == 0 })

    var o = PipelineTests.options(workers: 0, batch: 1, augment: false)
    o.inputMode = .resizePad
    let p = try TrainingPipeline(slices: PipelineTests.slices, config: PipelineTests.config(), options: o)
    #expect(p.samplesPerEpoch == 3, "one sample per slice")
    let b = p.batch(0)
    let s = PipelineTests.slices[b.samples[0].slice]
    let (i2, l2) = TileSampler.resizePadTiles(s, outputSize: 12, inputSize: 28)
    #expect(b.images == i2.values)
    let centre: [UInt8] = (0..<144).map { (i: Int) -> UInt8 in l2.classes[(i / 12 + 8) * 28 + i % 12 + 8] }
    #expect(b.targets == centre.flatMap { $0 == 1 ? [0, 1] : [1, 0] as [Float] })
  }

  // MARK: Errors

  @Test func badSettingsNameTheirOption() {
    let slices = PipelineTests.slices, config = PipelineTests.config()
    var o = PipelineOptions()
    (o.rank, o.worldSize) = (3, 3)
    #expect { try TrainingPipeline(slices: slices, config: config, options: o) } throws: { ($0 as? SettingError)?.setting == .rank }
    o = PipelineOptions()
    o.workers = -1
    #expect { try TrainingPipeline(slices: slices, config: config, options: o) } throws: { ($0 as? SettingError)?.setting == .workers }
    o = PipelineOptions()
    o.worldSize = 13
    #expect { try TrainingPipeline(slices: slices, config: config, options: o) } throws: { ($0 as? SettingError)?.setting == .rank && "\($0)".contains("12 samples") }
    var rgb = config
    rgb.inputChannels = 3
    #expect { try TrainingPipeline(slices: slices, config: rgb, options: PipelineOptions()) } throws: { ($0 as? SettingError)?.setting == .inputChannels }
    // Class 3 is no class of a 3-class model.
    var multi = config
    multi.classes = 3
    let s0 = slices[0]
    let bad = [LabelledSlice(width: s0.width, height: s0.height, image: s0.image, label: s0.label.map { $0 == 1 ? 3 : 0 })]
    #expect { try TrainingPipeline(slices: bad, config: multi, options: PipelineOptions()) } throws: {
      ($0 as? SettingError)?.setting == .classes && "\($0)".contains("label value 3")
    }
    o = PipelineOptions()
    o.augmentation = AugmentationOptions.all
    o.augmentation!.maxCropFraction = 0.7
    #expect { try TrainingPipeline(slices: slices, config: config, options: o) } throws: { ($0 as? SettingError)?.setting == .maxCropFraction }
  }
}
