import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

@Suite struct SlidingWindowTests {
  typealias Crop = TiledPredictorTests

  // MARK: - Grid

  @Test func overlapShortensTheStride() throws {
    let half = try TileGrid(height: 10, width: 9, inputTile: 6, outputTile: 4, overlap: 0.5)
    #expect(half.stride == 2 && half.rowStarts == [0, 2, 4, 6] && half.columnStarts == [0, 2, 4, 5])
    let quarter = try TileGrid(height: 10, width: 4, inputTile: 4, outputTile: 4, overlap: 0.25)
    #expect(quarter.stride == 3 && quarter.rowStarts == [0, 3, 6] && quarter.columnStarts == [0])
    // MONAI's interval: int(roi * (1 - overlap)), at least 1.
    #expect(try TileGrid(height: 1000, width: 700, inputTile: 100, outputTile: 100, overlap: 0.25).stride == 75)
    #expect(try TileGrid(height: 8, width: 8, inputTile: 4, outputTile: 4, overlap: 0.99).stride == 1)
    #expect(try TileGrid(height: 8, width: 8, inputTile: 4, outputTile: 4).stride == 4)
    for bad in [1, -0.1, .nan, .infinity] {
      #expect { try TileGrid(height: 8, width: 8, inputTile: 4, outputTile: 4, overlap: bad) } throws: { "\($0)".contains("[0, 1)") }
    }
    #expect { try TiledPredictor(inputTile: 4, outputTile: 4, inputChannels: 1, classes: 2, window: SlidingWindow(overlap: 1)) { $0 } }
      throws: { ($0 as? SettingError)?.setting == .overlap }
  }

  // MARK: - Blending weights

  @Test(arguments: [1, 2, 5, 8, 17, 388])
  func gaussianWeightsAreSymmetricAndPositive(tile o: Int) {
    let w = TileStitcher.weights(tile: o, blending: .gaussian)
    #expect(w.count == o * o && w.allSatisfy { $0 > 0 && $0 <= 1 } && w.max() == 1)
    for y in 0..<o {
      for x in 0..<o {
        let v = w[y * o + x]
        #expect(v == w[(o - 1 - y) * o + x] && v == w[y * o + o - 1 - x] && v == w[x * o + y])
        // Decreasing away from the centre along a row.
        if 2 * x + 1 < o { #expect(v <= w[y * o + x + 1]) }
      }
    }
    #expect(TileStitcher.weights(tile: o, blending: .mean) == Array(repeating: 1, count: o * o))
  }

  @Test func gaussianBlendingFavoursTheNearerCentre() throws {
    // 6x6 with 4x4 tiles: origins (0,0), (0,2), (2,0), (2,2); tile i outputs the constant i.
    let grid = try TileGrid(height: 6, width: 6, inputTile: 4, outputTile: 4)
    var next: Float = 0
    let out = try TileStitcher.stitch(image: Array(repeating: 0, count: 36), channels: 1, grid: grid, outputChannels: 1,
                                      batchSize: 1, blending: .gaussian) { _ in
      defer { next += 1 }
      return [Array(repeating: next, count: 16)]
    }
    // Pixel (0,3) is column 3 of tile 0 (an edge) and column 1 of tile 1 (near its centre).
    let g = TileStitcher.weights(tile: 4, blending: .gaussian)
    #expect(abs(out[3] - g[1] / (g[3] + g[1])) <= 1e-6 && out[3] > 0.5)
    #expect(out[0] == 0 && abs(out[5 * 6 + 5] - 3) <= 1e-6)
  }

  // MARK: - Identity-like tile functions

  @Test(arguments: [(37, 23), (5, 64), (16, 16), (1, 1)])
  func centreCropReproducesTheImageForEveryWindow(height: Int, width: Int) throws {
    for (s, o, c) in [(12, 4, 2), (24, 16, 1), (9, 9, 1)] {
      let image = (0..<height * width * c).map { Float($0 % 251) - 100 }
      for overlap in [0, 0.25, 0.5, 0.75] {
        let grid = try TileGrid(height: height, width: width, inputTile: s, outputTile: o, overlap: overlap)
        for blending in SlidingWindow.Blending.allCases {
          for tta in [false, true] {
            let out = try TileStitcher.stitch(image: image, channels: c, grid: grid, outputChannels: c, batchSize: 2,
                                              blending: blending, tta: tta) { Crop.centreCrop($0, input: s, output: o, channels: c) }
            let worst = zip(out, image).map { abs($0 - $1) }.max() ?? 0
            #expect(out.count == image.count && worst <= 1e-4,
                    "\(height)x\(width), tiles \(s)->\(o), overlap \(overlap), \(blending), tta \(tta): off by \(worst)")
          }
        }
      }
    }
  }

  /// The stitcher before overlap and blending existed: plain averaging, Float sums, tile order.
  static func plainStitch(image: [Float], channels: Int, grid: TileGrid, k: Int, tileFunction: ([[Float]]) -> [[Float]]) -> [Float] {
    let (h, w, o) = (grid.height, grid.width, grid.outputTile)
    var sum = [Float](repeating: 0, count: h * w * k), covered = [Float](repeating: 0, count: h * w)
    for origin in grid.origins {
      let out = tileFunction([grid.cutTile(at: origin.y, origin.x, of: image, channels: channels)])[0]
      for ty in 0..<min(o, h - origin.y) {
        for tx in 0..<min(o, w - origin.x) {
          let p = (origin.y + ty) * w + origin.x + tx
          covered[p] += 1
          for c in 0..<k { sum[p * k + c] += out[(ty * o + tx) * k + c] }
        }
      }
    }
    for p in 0..<h * w { for c in 0..<k { sum[p * k + c] /= covered[p] } }
    return sum
  }

  @Test func defaultWindowIsBitIdenticalToPlainOverlapTile() throws {
    // A tile function whose outputs differ per tile and are not exactly representable sums.
    let scramble = { (tiles: [[Float]], o: Int, k: Int) -> [[Float]] in
      tiles.map { t -> [Float] in
        (0..<o * o * k).map { i -> Float in
          let angle: Float = t[i % t.count] * 1.7 + Float(i) * 0.37
          return Foundation.sin(angle) / 3
        }
      }
    }
    for (h, w, s, o) in [(37, 23, 12, 6), (30, 50, 20, 16), (7, 7, 8, 8)] {
      let image = (0..<h * w).map { Float(($0 * 7919) % 257) / 255 }
      let grid = try TileGrid(height: h, width: w, inputTile: s, outputTile: o)
      let got = try TileStitcher.stitch(image: image, channels: 1, grid: grid, outputChannels: 3, batchSize: 4) { scramble($0, o, 3) }
      let plain = Self.plainStitch(image: image, channels: 1, grid: grid, k: 3) { scramble($0, o, 3) }
      #expect(got == plain)
    }
  }

  // MARK: - Test-time augmentation

  /// A flip-equivariant tile function: the 3x3 box mean of the centre crop (tiles S = S' + 2).
  static func boxMean(_ tiles: [[Float]], input s: Int) -> [[Float]] {
    let o = s - 2
    return tiles.map { t in
      (0..<o * o).map { i in
        let (y, x) = (i / o + 1, i % o + 1)
        return (-1...1).reduce(Float(0)) { acc, dy in acc + (-1...1).reduce(Float(0)) { $0 + t[(y + dy) * s + x + $1] } } / 9
      }
    }
  }

  @Test func ttaOfAFlipEquivariantFunctionChangesNothing() throws {
    let (h, w, s) = (19, 13, 10)
    let image = (0..<h * w).map { Float(($0 * 31) % 101) - 50 }
    for overlap in [0, 0.5] {
      let grid = try TileGrid(height: h, width: w, inputTile: s, outputTile: s - 2, overlap: overlap)
      for blending in SlidingWindow.Blending.allCases {
        let plain = try TileStitcher.stitch(image: image, channels: 1, grid: grid, outputChannels: 1, batchSize: 3,
                                            blending: blending) { Self.boxMean($0, input: s) }
        var calls = 0
        let tta = try TileStitcher.stitch(image: image, channels: 1, grid: grid, outputChannels: 1, batchSize: 3,
                                          blending: blending, tta: true) { calls += 1; return Self.boxMean($0, input: s) }
        #expect(TiledPredictorTests.maxDifference(plain, tta) <= 1e-4)
        #expect(calls == 4 * ((grid.origins.count + 2) / 3))
      }
    }
  }

  @Test func ttaUnflipsEachOutput() throws {
    // Output = centre crop + x + 10 y (tile coordinates): the crop is flip-equivariant, the ramps
    // average over the flips to (o - 1) / 2 each, so TTA gives image + 11 (o - 1) / 2.
    let (h, w, s, o) = (9, 14, 8, 4)
    let image = (0..<h * w).map { Float($0 % 17) }
    let grid = try TileGrid(height: h, width: w, inputTile: s, outputTile: o)
    let out = try TileStitcher.stitch(image: image, channels: 1, grid: grid, outputChannels: 1, batchSize: 5, tta: true) { tiles in
      Crop.centreCrop(tiles, input: s, output: o, channels: 1).map { t in t.indices.map { t[$0] + Float($0 % o) + 10 * Float($0 / o) } }
    }
    #expect(TiledPredictorTests.maxDifference(out, image.map { $0 + 16.5 }) <= 1e-5)
  }

  // MARK: - Whole predictions

  /// Two-class probabilities from the centre crop of one-channel tiles: p(1) = (v + 1) / 2.
  static func threshold(_ tiles: [[Float]], input s: Int, output o: Int) -> [[Float]] {
    Crop.centreCrop(tiles, input: s, output: o, channels: 1).map { t in t.flatMap { v in [(1 - v) / 2, (1 + v) / 2] } }
  }

  @Test func aLargeImageGivesAPredictionOfItsSize() throws {
    let (h, w) = (700, 1000)
    let image = GrayImage(width: w, height: h, pixels: (0..<h * w).map { UInt8(truncatingIfNeeded: ($0 % w) * 3 + $0 / w) })
    let predictor = try TiledPredictor(inputTile: 132, outputTile: 100, inputChannels: 1, classes: 2, batchSize: 4,
                                       window: SlidingWindow(overlap: 0.25, blending: .gaussian)) {
      Self.threshold($0, input: 132, output: 100)
    }
    let p = try predictor.predict(image)
    #expect(p.height == h && p.width == w && p.probabilities.count == h * w * 2 && p.classIndices.count == h * w)
    let scaled = image.pixels.map { Float($0) / 127.5 - 1 }
    let wrong = (0..<h * w).filter { abs(p.probabilities[2 * $0 + 1] - (1 + scaled[$0]) / 2) > 1e-5 }.count
    #expect(wrong == 0)
    #expect((0..<h * w).allSatisfy { scaled[$0] == 0 || p.classIndices[$0] == (scaled[$0] > 0 ? 1 : 0) })
  }

  @Test(arguments: [UNetConfig.Padding.same, .valid])
  func uNetPredictionsWithEveryWindowAreProbabilities(padding: UNetConfig.Padding) throws {
    let model = try TiledPredictorTests.model(padding)
    let (h, w) = (23, 17)
    let img = TiledPredictorTests.image(h, w)
    let plain = try TiledPredictor(model: model, batchSize: 4).predict(img)
    for window in [SlidingWindow(overlap: 0.5, blending: .gaussian), SlidingWindow(overlap: 0.25, tta: true),
                   SlidingWindow(overlap: 0.5, blending: .gaussian, tta: true)] {
      let got = try TiledPredictor(model: model, batchSize: 4, window: window).predict(img)
      #expect(got.height == h && got.width == w && got.probabilities.count == h * w * 2)
      for p in 0..<h * w {
        let (p0, p1) = (got.probabilities[2 * p], got.probabilities[2 * p + 1])
        #expect(abs(p0 + p1 - 1) <= 1e-5 && p0 >= 0 && p1 >= 0)
        #expect(got.classIndices[p] == (p1 > p0 ? 1 : 0))
      }
      // Blending averages the same model's outputs, so the prediction stays near the plain one.
      #expect(TiledPredictorTests.maxDifference(got.probabilities, plain.probabilities) < 0.5)
    }
  }
}
