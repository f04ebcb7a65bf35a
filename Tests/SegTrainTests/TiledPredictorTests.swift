import SegCore
import SegData
import SegNN
import SegTrain
import Testing

@Suite struct TiledPredictorTests {
  // MARK: - Geometry

  @Test func reflectIndexMatchesNumPy() {
    // np.pad(np.arange(3), 5, 'reflect') == [1 0 1 2 1 0 1 2 1 0 1 2 1]
    #expect((-5..<8).map { reflectIndex($0, size: 3) } == [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1])
    // np.pad(np.arange(4), 3, 'reflect') == [3 2 1 0 1 2 3 2 1 0]
    #expect((-3..<7).map { reflectIndex($0, size: 4) } == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    #expect((-4..<5).allSatisfy { reflectIndex($0, size: 1) == 0 })
  }

  @Test func lastTilesAreShiftedBackToTheBorder() throws {
    let g = try TileGrid(height: 37, width: 23, inputTile: 36, outputTile: 16)
    #expect(g.rowStarts == [0, 16, 21] && g.columnStarts == [0, 7] && g.margin == 10)
    let exact = try TileGrid(height: 32, width: 16, inputTile: 16, outputTile: 16)
    #expect(exact.rowStarts == [0, 16] && exact.columnStarts == [0])
    let small = try TileGrid(height: 20, width: 20, inputTile: 572, outputTile: 388)
    #expect(small.rowStarts == [0] && small.columnStarts == [0])
    #expect { try TileGrid(height: 8, width: 8, inputTile: 10, outputTile: 7) } throws: { "\($0)".contains("even difference") }
    #expect { try TileGrid(height: 8, width: 8, inputTile: 4, outputTile: 6) } throws: { "\($0)".contains("centred") }
    #expect { try TileGrid(height: 0, width: 8, inputTile: 4, outputTile: 4) } throws: { "\($0)".contains("no pixels") }
  }

  // MARK: - Stitching

  /// A tile function with a valid model's geometry that passes its input through: the centre crop.
  static func centreCrop(_ tiles: [[Float]], input s: Int, output o: Int, channels c: Int) -> [[Float]] {
    let m = (s - o) / 2
    return tiles.map { t in
      (0..<o).flatMap { y in (0..<o).flatMap { x in (0..<c).map { t[((y + m) * s + x + m) * c + $0] } } }
    }
  }

  @Test(arguments: [(37, 23), (20, 20), (1, 1), (5, 64), (16, 16), (33, 17)])
  func centreCropTilesReproduceTheImage(height: Int, width: Int) throws {
    for (s, o, c) in [(572, 388, 1), (12, 4, 2), (9, 9, 1), (10, 2, 1), (24, 16, 3)] {
      let image = (0..<height * width * c).map { Float($0 % 251) - 100 }
      let grid = try TileGrid(height: height, width: width, inputTile: s, outputTile: o)
      var calls = 0
      let out = try TileStitcher.stitch(image: image, channels: c, grid: grid, outputChannels: c, batchSize: 3) {
        calls += 1
        #expect($0.count <= 3 && $0.allSatisfy { $0.count == s * s * c })
        return Self.centreCrop($0, input: s, output: o, channels: c)
      }
      let wrong = zip(out, image).filter { $0 != $1 }.count
      #expect(out.count == image.count && wrong == 0, "\(height)x\(width), tiles \(s)->\(o), \(c) channels: \(wrong) values differ")
      #expect(calls == (grid.origins.count + 2) / 3)
    }
  }

  @Test func mirroredContextSurroundsEachTile() throws {
    // A 1x4 row [0,1,2,3], tiles 8 -> 2 (margin 3): the first tile reads columns -3...4, the
    // second -1...6, mirrored; every tile row is the image's one row.
    let grid = try TileGrid(height: 1, width: 4, inputTile: 8, outputTile: 2)
    #expect(grid.cutTile(at: 0, 0, of: [0, 1, 2, 3], channels: 1).suffix(8) == [3, 2, 1, 0, 1, 2, 3, 2])
    #expect(grid.cutTile(at: 0, 2, of: [0, 1, 2, 3], channels: 1).suffix(8) == [1, 0, 1, 2, 3, 2, 1, 0])
  }

  @Test func overlapsAreAveraged() throws {
    // 6x6 with 4x4 tiles: origins (0,0), (0,2), (2,0), (2,2); tile i outputs the constant i.
    let grid = try TileGrid(height: 6, width: 6, inputTile: 4, outputTile: 4)
    var next: Float = 0
    let out = try TileStitcher.stitch(image: Array(repeating: 0, count: 36), channels: 1, grid: grid, outputChannels: 1, batchSize: 1) { _ in
      defer { next += 1 }
      return [Array(repeating: next, count: 16)]
    }
    #expect(out[0] == 0 && out[3] == 0.5 && out[5] == 1)
    #expect(out[2 * 6 + 0] == 1 && out[2 * 6 + 2] == 1.5 && out[5 * 6 + 5] == 3)
  }

  @Test func badTileOutputsAreErrors() throws {
    let grid = try TileGrid(height: 5, width: 5, inputTile: 4, outputTile: 2)
    #expect { try TileStitcher.stitch(image: Array(repeating: 0, count: 25), channels: 1, grid: grid, outputChannels: 2, batchSize: 4) { $0 } }
      throws: { "\($0)".contains("expected 2x2x2") }
    #expect { try TileStitcher.stitch(image: [0], channels: 1, grid: grid, outputChannels: 1, batchSize: 1) { $0 } }
      throws: { "\($0)".contains("1 values for a 5x5 image") }
  }

  // MARK: - With a U-Net

  static func model(_ padding: UNetConfig.Padding) throws -> UNet {
    var config = UNetConfig()
    config.baseFilters = 2
    config.depth = 1
    config.padding = padding
    config.inputSize = padding == .same ? 8 : 36  // valid: 36 -> 20
    return try UNet(config: config, seed: 5, on: ReferenceBackend.shared)
  }

  static func image(_ h: Int, _ w: Int) -> GrayImage {
    GrayImage(width: w, height: h, pixels: (0..<h * w).map { UInt8(truncatingIfNeeded: ($0 * 37) ^ ($0 / w * 11)) })
  }

  static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    a.count == b.count ? zip(a, b).map { abs($0 - $1) }.max() ?? 0 : .infinity
  }

  @Test func oneSameTileIsTheModelsOutput() throws {
    let unet = try Self.model(.same)
    let img = Self.image(8, 8)
    let got = try TiledPredictor(model: unet).predict(img)
    let x = try Tensor(shape: [1, 8, 8, 1], floats: img.pixels.map { Float($0) / 127.5 - 1 }, on: ReferenceBackend.shared)
    let direct = try withoutGradients { try softmax(unet(x)).floats() }
    #expect(Self.maxDifference(got.probabilities, direct) <= 1e-6)
  }

  @Test func oneValidTileIsTheModelsOutputOnTheMirroredTile() throws {
    let unet = try Self.model(.valid)
    #expect(unet.config.outputSize == 20)
    let img = Self.image(20, 20)
    let got = try TiledPredictor(model: unet).predict(img)
    let x = try Tensor(shape: [1, 20, 20, 1], floats: img.pixels.map { Float($0) / 127.5 - 1 }, on: ReferenceBackend.shared)
    let padded = try pad(x, before: [0, 8, 8, 0], after: [0, 8, 8, 0], mode: .reflect)
    let direct = try withoutGradients { try softmax(unet(padded)).floats() }
    #expect(Self.maxDifference(got.probabilities, direct) <= 1e-6)
  }

  @Test(arguments: [UNetConfig.Padding.same, .valid])
  func anySizeGivesAWholeImageOfProbabilities(padding: UNetConfig.Padding) throws {
    let predictor = try TiledPredictor(model: Self.model(padding), batchSize: 3)
    for (h, w) in [(37, 23), (5, 7)] {
      let img = Self.image(h, w)
      let got = try predictor.predict(img)
      #expect(got.height == h && got.width == w && got.classes == 2)
      #expect(got.probabilities.count == h * w * 2 && got.classIndices.count == h * w)
      for p in 0..<h * w {
        let (p0, p1) = (got.probabilities[2 * p], got.probabilities[2 * p + 1])
        #expect(abs(p0 + p1 - 1) <= 1e-5)
        #expect(got.classIndices[p] == (p1 > p0 ? 1 : 0))
      }
      let scaled = try predictor.predict(scaled: img.pixels.map { Float($0) / 127.5 - 1 }, height: h, width: w)
      #expect(scaled.probabilities == got.probabilities)
    }
  }

  @Test func badImagesAreErrors() throws {
    let predictor = try TiledPredictor(model: Self.model(.same))
    #expect { try predictor.predict(scaled: [0, 0, 0], height: 2, width: 2) } throws: { "\($0)".contains("4 were expected") }
    #expect { try predictor.predict(GrayImage(width: 2, height: 2, pixels: [1])) } throws: { "\($0)".contains("1 pixels for a 2x2") }
    #expect { try TiledPredictor(model: Self.model(.same), batchSize: 0) } throws: { ($0 as? SettingError)?.setting == .batchSize }
  }
}
