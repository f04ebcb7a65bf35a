import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

/// RGB slices with several classes through the tile sampler and the training pipeline.
@Suite struct MultiClassTileTests {
  /// A depth-1 U-Net on 3-channel tiles with 3 classes: 28x28 tiles give 12x12 outputs.
  static func config() -> UNetConfig {
    var c = UNetConfig()
    (c.depth, c.baseFilters, c.inputSize, c.inputChannels, c.classes) = (1, 2, 28, 3, 3)
    return c
  }

  /// A 24x24 RGB slice whose channels differ (red from x, green from y, blue constant) and whose
  /// classes are bands: (x / 4 + y / 8) % 3.
  static func slice(seed: Int = 0) -> LabelledSlice {
    let n = 24
    var image = [UInt8](repeating: 0, count: n * n * 3)
    for y in 0..<n {
      for x in 0..<n {
        let k = (y * n + x) * 3
        (image[k], image[k + 1], image[k + 2]) = (UInt8(x * 10 + seed), UInt8(y * 10), 200)
      }
    }
    let label = (0..<n * n).map { UInt8(($0 % n / 4 + $0 / n / 8) % 3) }
    return LabelledSlice(width: n, height: n, channels: 3, image: image, label: label)
  }

  /// One-hot rows of class indices with `k` classes.
  static func oneHot(_ classes: [UInt8], _ k: Int) -> [Float] {
    classes.flatMap { c in (0..<k).map { Float($0 == Int(c) ? 1 : 0) } }
  }

  @Test func rgbTilesKeepChannelOrder() throws {
    let s = MultiClassTileTests.slice()
    let tile = TileSampler.imageTile(s, x: 6, y: 6, window: 12, size: 28)
    #expect(tile.channels == 3 && tile.values.count == 28 * 28 * 3)
    func scaled(_ v: Int) -> Float { Float(v) / 127.5 - 1 }
    // Tile pixel (ty, tx) is slice pixel (ty - 2, tx - 2) inside the slice (margin 8, window at 6).
    for (ty, tx) in [(2, 2), (10, 17), (25, 25)] {
      let (y, x) = (ty - 2, tx - 2), k = (ty * 28 + tx) * 3
      #expect(tile.values[k] == scaled(x * 10) && tile.values[k + 1] == scaled(y * 10) && tile.values[k + 2] == scaled(200))
    }
    // Mirrored at the border: tile column 0 is slice column 2 (reflection of -2).
    #expect(tile.values[(5 * 28) * 3] == scaled(2 * 10))
    let (rp, _) = TileSampler.resizePadTiles(s, outputSize: 12, inputSize: 28)
    let centre = ((8 + 5) * 28 + 8 + 5) * 3
    #expect(rp.channels == 3 && rp.values[centre + 2] == scaled(200) && rp.values[centre] < rp.values[centre + 3])
  }

  @Test func threeClassLabelsBecomeOneHotTargets() throws {
    let slices = [MultiClassTileTests.slice()]
    var o = PipelineOptions()
    (o.workers, o.batchSize, o.jitter, o.shuffle) = (0, 4, false, false)
    let p = try TrainingPipeline(slices: slices, config: MultiClassTileTests.config(), options: o)
    let b = p.batch(0)
    #expect(b.imageShape == [4, 28, 28, 3] && b.targetShape == [4, 12, 12, 3])
    for (i, s) in b.samples.enumerated() {
      let label = TileSampler.labelTile(slices[0], x: s.x, y: s.y, window: 12, size: 12)
      #expect(Set(label.classes) == [0, 1, 2])
      #expect(Array(b.targets[i * 432..<(i + 1) * 432]) == MultiClassTileTests.oneHot(label.classes, 3))
      let image = TileSampler.imageTile(slices[0], x: s.x, y: s.y, window: 12, size: 28)
      #expect(Array(b.images[i * 2352..<(i + 1) * 2352]) == image.values)
    }
    // Augmented batches are one-hot over the three classes too.
    let (_, targets) = try pipelineBatch(slices, config: MultiClassTileTests.config(), size: 2, seed: 1, step: 0, augment: true)
    let t = try targets.floats()
    #expect(targets.shape == Shape([2, 12, 12, 3]))
    let sums: [Float] = stride(from: 0, to: t.count, by: 3).map { (j: Int) -> Float in t[j] + t[j + 1] + t[j + 2] }
    #expect(sums.allSatisfy { $0 == 1 })
  }

  @Test func augmentationKeepsClassIndices() throws {
    var a = AugmentationOptions.all
    (a.elasticProbability, a.noiseProbability, a.elasticSigma) = (1, 1, 3)
    var o = PipelineOptions()
    (o.workers, o.batchSize, o.augmentation, o.seed) = (0, 2, a, 5)
    let slices = [MultiClassTileTests.slice(), MultiClassTileTests.slice(seed: 3)]
    let p = try TrainingPipeline(slices: slices, config: MultiClassTileTests.config(), options: o)
    var seen = Set<Int>()
    for i in 0..<4 {
      let t = p.batch(i).targets
      for j in stride(from: 0, to: t.count, by: 3) {
        let row = Array(t[j..<j + 3])
        #expect(row.filter { $0 == 1 }.count == 1 && row.filter { $0 == 0 }.count == 2)
        seen.insert(row.firstIndex(of: 1)!)
      }
    }
    #expect(seen == [0, 1, 2])
    // Label tiles are resampled by nearest neighbour: a rotated, warped tile holds only its classes.
    var rng = CounterRandom(seed: 9, stream: 0)
    let label = LabelTile(height: 12, width: 12, classes: (0..<144).map { UInt8([0, 2, 5][$0 % 12 / 4]) })
    for _ in 0..<4 {
      let out = Augmentation.apply(a.draw(&rng), label: label)
      #expect(Set(out.classes).isSubset(of: [0, 2, 5]))
    }
  }

  @Test func channelsMustMatchTheModel() throws {
    var gray = MultiClassTileTests.config()
    gray.inputChannels = 1
    #expect { try TileSampler(slices: [MultiClassTileTests.slice()], config: gray) } throws: {
      ($0 as? SettingError)?.setting == .inputChannels && "\($0)".contains("3 channel(s), the model expects 1")
    }
    // Converting a slice to gray keeps its labels and takes the luma.
    let s = MultiClassTileTests.slice().converted(channels: 1)
    #expect(s.channels == 1 && s.label == MultiClassTileTests.slice().label && s.image.count == 24 * 24)
    #expect(s.grayImage == MultiClassTileTests.slice().grayImage)
  }
}
