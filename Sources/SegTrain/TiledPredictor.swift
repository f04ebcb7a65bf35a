import SegCore
import SegData
import SegNN

// MARK: - Tile grid

/// Where the tiles of an overlap-tile prediction lie: output tiles of side `outputTile` from the
/// top-left corner at `stride` (`outputTile` without overlap, less with it), the last row and column
/// shifted back to end at the border (so tiles overlap there too), each read from the input tile of
/// side `inputTile` centred on it, with the image mirrored beyond its borders. An image smaller than
/// a tile gets one tile per axis.
public struct TileGrid: Equatable, Sendable {
  /// The image's size in pixels.
  public let height, width: Int
  /// Side S of the model's input tile.
  public let inputTile: Int
  /// Side S' of the model's output tile (S' == S for same padding, S' < S for valid).
  public let outputTile: Int
  /// Image rows where the rows of output tiles begin, ascending.
  public let rowStarts: [Int]
  /// Image columns where the columns of output tiles begin, ascending.
  public let columnStarts: [Int]
  /// Distance between neighbouring tile origins (`outputTile` when tiles do not overlap).
  public let stride: Int

  /// The grid for an image of `height` x `width`; both tiles positive, S' <= S and S - S' even;
  /// neighbouring output tiles share the fraction `overlap` (in [0, 1)) of their side.
  public init(height: Int, width: Int, inputTile: Int, outputTile: Int, overlap: Double = 0) throws {
    guard height > 0, width > 0 else {
      throw TensorError(op: "TileGrid", "a \(height)x\(width) image has no pixels to predict")
    }
    guard outputTile > 0, outputTile <= inputTile, (inputTile - outputTile) % 2 == 0 else {
      throw TensorError(op: "TileGrid", "output tile \(outputTile) does not sit centred in input tile \(inputTile); "
        + "need 0 < output <= input with an even difference")
    }
    guard overlap.isFinite, overlap >= 0, overlap < 1 else {
      throw TensorError(op: "TileGrid", "overlap \(overlap) is not a fraction in [0, 1) of the output tile")
    }
    (self.height, self.width, self.inputTile, self.outputTile) = (height, width, inputTile, outputTile)
    stride = SlidingWindow(overlap: overlap).stride(tile: outputTile)
    rowStarts = Self.starts(length: height, tile: outputTile, stride: stride)
    columnStarts = Self.starts(length: width, tile: outputTile, stride: stride)
  }

  /// Context the input tile adds on each side of its output tile.
  public var margin: Int { (inputTile - outputTile) / 2 }

  /// Output-tile origins (row, column), row-major over the grid.
  public var origins: [(y: Int, x: Int)] { rowStarts.flatMap { y in columnStarts.map { x in (y, x) } } }

  /// 0, d, 2d, ... (d the stride) while a whole tile fits before the border, then one tile ending
  /// at the border.
  static func starts(length: Int, tile: Int, stride step: Int) -> [Int] {
    guard length > tile else { return [0] }
    return Array(Swift.stride(from: 0, to: length - tile, by: step)) + [length - tile]
  }

  /// The input tile [S,S,C] (row-major, channels last) whose output tile begins at (y, x), cut
  /// from `image` [H,W,C] and mirrored beyond its borders.
  public func cutTile(at y: Int, _ x: Int, of image: [Float], channels c: Int) -> [Float] {
    let s = inputTile
    let rows = (0..<s).map { reflectIndex(y - margin + $0, size: height) }
    let cols = (0..<s).map { reflectIndex(x - margin + $0, size: width) }
    var tile = [Float](repeating: 0, count: s * s * c)
    for (ty, sy) in rows.enumerated() {
      for (tx, sx) in cols.enumerated() {
        for ch in 0..<c { tile[(ty * s + tx) * c + ch] = image[(sy * width + sx) * c + ch] }
      }
    }
    return tile
  }
}

// MARK: - Stitching

/// Overlap-tile prediction with any tile function, so that the geometry can be checked apart from
/// a model.
public enum TileStitcher {
  /// Cuts `image` [H,W,C] (row-major, channels last) into the grid's mirrored input tiles [S,S,C],
  /// hands them to `tileFunction` in batches of at most `batchSize`, which must return one output
  /// [S',S',K] per tile, and stitches those into [H,W,K]. Where tiles overlap, the outputs are
  /// averaged with the `blending` weights (`weights(tile:blending:)`) normalised by their sum at
  /// each pixel; the parts of tiles beyond the image are dropped. With `tta`, each tile's output is
  /// the mean over its 4 flips (`tileFunction` then gets 4 batches per batch of tiles).
  public static func stitch(
    image: [Float], channels: Int, grid: TileGrid, outputChannels k: Int, batchSize: Int,
    blending: SlidingWindow.Blending = .mean, tta: Bool = false,
    tileFunction: ([[Float]]) throws -> [[Float]]
  ) throws -> [Float] {
    let (h, w, o) = (grid.height, grid.width, grid.outputTile)
    guard channels > 0, k > 0, batchSize > 0 else {
      throw TensorError(op: "TileStitcher", "channels \(channels), output channels \(k) and batch size \(batchSize) must be positive")
    }
    guard image.count == h * w * channels else {
      throw TensorError(op: "TileStitcher", "\(image.count) values for a \(h)x\(w) image of \(channels) channels (\(h * w * channels))")
    }
    let weight = weights(tile: o, blending: blending)
    var sum = [Float](repeating: 0, count: h * w * k)
    var covered = [Float](repeating: 0, count: h * w)
    let origins = grid.origins
    for first in Swift.stride(from: 0, to: origins.count, by: batchSize) {
      let batch = origins[first..<min(first + batchSize, origins.count)]
      let tiles = batch.map { grid.cutTile(at: $0.y, $0.x, of: image, channels: channels) }
      let outputs: [[Float]]
      if tta {
        outputs = try flipAveraged(tiles, grid: grid, channels: channels, outputChannels: k, tileFunction: tileFunction)
      } else {
        outputs = try tileFunction(tiles)
        try checkOutputs(outputs, tiles: tiles.count, side: o, channels: k)
      }
      for (origin, out) in zip(batch, outputs) {
        for ty in 0..<min(o, h - origin.y) {
          for tx in 0..<min(o, w - origin.x) {
            let p = (origin.y + ty) * w + origin.x + tx, wt = weight[ty * o + tx]
            covered[p] += wt
            // With mean blending wt is 1, so the sums (and the result) are those of plain averaging.
            for c in 0..<k { sum[p * k + c] += wt * out[(ty * o + tx) * k + c] }
          }
        }
      }
    }
    for p in 0..<h * w {
      for c in 0..<k { sum[p * k + c] /= covered[p] }
    }
    return sum
  }
}

// MARK: - Prediction

/// Class probabilities and classes of a whole image.
public struct TiledPrediction: Sendable {
  /// The image's size in pixels, and the number of classes K.
  public let height, width, classes: Int
  /// Softmax probabilities [H,W,K], row-major, classes last.
  public let probabilities: [Float]
  /// The most probable class of each pixel [H,W] (ties to the lower class).
  public let classIndices: [Int32]
}

/// Predicts whole images of any size by overlap-tile (Ronneberger et al.) with a sliding window:
/// the image is mirrored beyond its borders, input tiles of the model's input size are cut so that
/// their output tiles cover the image (see `TileGrid`; overlapping as `window` says), run through
/// the model in batches without gradients (and flipped, with TTA), and their softmax probabilities
/// stitched, blended where tiles overlap.
public struct TiledPredictor {
  /// Input tiles [S,S,C] -> class probabilities [S',S',K], one per tile.
  public typealias TileFunction = ([[Float]]) throws -> [[Float]]

  /// Tiles per forward pass.
  public let batchSize: Int
  /// Side S of the model's input tile (its config's input size).
  public let inputTile: Int
  /// Side S' of the model's output tile.
  public let outputTile: Int
  /// Channels C of the images the model takes.
  public let inputChannels: Int
  /// Classes K the model predicts.
  public let classes: Int
  /// Overlap, blending and test-time augmentation.
  public let window: SlidingWindow
  private let tileFunction: TileFunction

  /// A predictor for `model` (its config's input size is the tile), running `batchSize` tiles at
  /// once; with `compile` (`--xla`) the forward pass is traced once per batch shape and replayed.
  public init(model: UNet, batchSize: Int = 1, window: SlidingWindow = SlidingWindow(), compile: CompileOptions? = nil) throws {
    let c = model.config
    let forward: ([Tensor]) throws -> [Tensor]
    if let compile {
      // The weights are inputs, not constants, so that the program holds no copy of them and a
      // model trained further between two predictions is read as it is.
      let compiled = CompiledFunction("predict", strict: compile.strict, dumpDirectory: compile.dumpDirectory) { xs, _ in
        try withoutGradients { [try softmax(model(xs[0]))] }
      }
      forward = { xs in try compiled(xs + model.parameters.map(\.value)) }
    } else {
      forward = { xs in try withoutGradients { [try softmax(model(xs[0]))] } }
    }
    try self.init(inputTile: c.inputSize, outputTile: c.outputSize, inputChannels: c.inputChannels, classes: c.classes,
                  batchSize: batchSize, window: window) { try Self.probabilities(of: model, tiles: $0, forward: forward) }
  }

  /// A predictor for any tile function with a model's geometry (a compiled model, or a stand-in in
  /// tests): tiles S -> S', C channels in, K class probabilities out.
  public init(
    inputTile: Int, outputTile: Int, inputChannels: Int, classes: Int, batchSize: Int = 1,
    window: SlidingWindow = SlidingWindow(), tileFunction: @escaping TileFunction
  ) throws {
    guard batchSize > 0 else { throw SettingError(.batchSize, value: batchSize, "must be at least 1") }
    try window.validate()
    guard inputChannels > 0, classes > 0 else {
      throw TensorError(op: "TiledPredictor", "\(inputChannels) input channels and \(classes) classes; both must be positive")
    }
    (self.inputTile, self.outputTile, self.inputChannels, self.classes) = (inputTile, outputTile, inputChannels, classes)
    (self.batchSize, self.window, self.tileFunction) = (batchSize, window, tileFunction)
  }

  /// Predicts an 8-bit image, scaled as in training (x / 127.5 - 1); the model must take one channel.
  public func predict(_ image: GrayImage) throws -> TiledPrediction {
    guard image.pixels.count == image.width * image.height else {
      throw TensorError(op: "TiledPredictor", "\(image.pixels.count) pixels for a \(image.width)x\(image.height) image")
    }
    return try predict(scaled: image.pixels.map { Float($0) / 127.5 - 1 }, height: image.height, width: image.width)
  }

  /// Predicts an image already scaled, [H,W,C] row-major with C the model's input channels.
  public func predict(scaled image: [Float], height: Int, width: Int) throws -> TiledPrediction {
    let c = inputChannels, k = classes
    guard image.count == height * width * c else {
      throw TensorError(op: "TiledPredictor", "\(image.count) values for a \(height)x\(width) image; the model takes "
        + "\(c) channel(s), so \(height * width * c) were expected")
    }
    let tiles = try TileGrid(height: height, width: width, inputTile: inputTile, outputTile: outputTile, overlap: window.overlap)
    let p = try TileStitcher.stitch(image: image, channels: c, grid: tiles, outputChannels: k, batchSize: batchSize,
                                    blending: window.blending, tta: window.tta, tileFunction: tileFunction)
    var classes = [Int32](repeating: 0, count: height * width)
    for i in classes.indices {
      var best = 0
      for j in 0..<k where p[i * k + j] > p[i * k + best] { best = j }
      classes[i] = Int32(best)
    }
    return TiledPrediction(height: height, width: width, classes: k, probabilities: p, classIndices: classes)
  }

  /// The tile function: input tiles [S,S,C] -> softmax probabilities [S',S',K].
  public func probabilities(tiles: [[Float]]) throws -> [[Float]] { try tileFunction(tiles) }

  /// `model` as a tile function: input tiles [S,S,C] -> softmax probabilities [S',S',K], computed
  /// in one forward pass without gradients.
  public static func probabilities(of model: UNet, tiles: [[Float]]) throws -> [[Float]] {
    try probabilities(of: model, tiles: tiles) { xs in try withoutGradients { [try softmax(model(xs[0]))] } }
  }

  /// `probabilities(of:tiles:)` through `forward` (the batch [N,S,S,C] to the probabilities [N,S',S',K]).
  static func probabilities(of model: UNet, tiles: [[Float]], forward: ([Tensor]) throws -> [Tensor]) throws -> [[Float]] {
    let s = model.config.inputSize, o = model.config.outputSize, c = model.config.inputChannels, k = model.config.classes
    let backend = model.parameters[0].value.backend
    let flat = try withoutGradients { () -> [Float] in
      let x = try Tensor(shape: [tiles.count, s, s, c], floats: tiles.flatMap { $0 }, on: backend)
      return try forward([x])[0].floats()
    }
    let n = o * o * k
    return (0..<tiles.count).map { Array(flat[$0 * n..<($0 + 1) * n]) }
  }
}
