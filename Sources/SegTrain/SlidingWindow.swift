import Foundation
import SegCore
import SegNN

// MARK: - Options

/// How a whole image is predicted from tiles (MONAI's sliding_window_inference, nnU-Net's
/// predictor): how much neighbouring output tiles overlap, how the overlapping outputs are blended,
/// and whether each tile is also predicted flipped (test-time augmentation). The defaults give
/// plain overlap-tile: tiles side by side, the last row and column shifted back to the border.
public struct SlidingWindow: Equatable, Sendable {
  /// How the outputs of overlapping tiles are combined at a pixel.
  public enum Blending: String, CaseIterable, Sendable {
    /// Every tile counts the same.
    case mean
    /// Each tile's output is weighted by a Gaussian over the output tile (sigma = side / 8, as
    /// nnU-Net), so that a pixel is decided mostly by the tile it lies nearest the centre of,
    /// where the model saw the most context.
    case gaussian
  }

  /// Fraction of the output tile that neighbouring tiles share, in [0, 1): the tiles step by
  /// floor(side * (1 - overlap)) pixels (at least 1). 0.5 predicts every pixel about 4 times.
  public var overlap: Double
  /// How overlapping outputs are blended.
  public var blending: Blending
  /// Test-time augmentation: average the probabilities of the tile and of its horizontal,
  /// vertical and double flips, each flipped back (4 forward passes per tile).
  public var tta: Bool

  /// Options; the defaults reproduce plain overlap-tile prediction exactly.
  public init(overlap: Double = 0, blending: Blending = .mean, tta: Bool = false) {
    (self.overlap, self.blending, self.tta) = (overlap, blending, tta)
  }

  /// Throws `SettingError` naming the overlap unless 0 <= overlap < 1.
  public func validate() throws {
    guard overlap.isFinite, overlap >= 0, overlap < 1 else {
      throw SettingError(.overlap, value: overlap, "not a fraction in [0, 1) of the tile that neighbouring tiles share")
    }
  }

  /// Distance between the origins of neighbouring output tiles of side `tile`.
  public func stride(tile: Int) -> Int { max(1, Int((Double(tile) * (1 - overlap)).rounded(.down))) }
}

// MARK: - Blending weights

extension TileStitcher {
  /// The weight of each pixel of an output tile of side `tile` [tile,tile], row-major: all 1 for
  /// `.mean`; for `.gaussian`, exp(-d^2 / (2 sigma^2)) with d the distance to the tile's centre
  /// and sigma = tile / 8, scaled so that the largest is 1. Symmetric under flips and transposition,
  /// and positive everywhere (the corners get about exp(-16)).
  public static func weights(tile: Int, blending: SlidingWindow.Blending) -> [Float] {
    switch blending {
    case .mean:
      return Array(repeating: 1, count: tile * tile)
    case .gaussian:
      // Separable: the 2-D Gaussian is the outer product of two 1-D ones, each peaking at 1.
      let centre = Double(tile - 1) / 2, sigma = Double(tile) / 8
      let g = (0..<tile).map { exp(-(Double($0) - centre) * (Double($0) - centre) / (2 * sigma * sigma)) }
      let peak = g.max() ?? 1
      let n = g.map { $0 / peak }
      return (0..<tile * tile).map { Float(n[$0 / tile] * n[$0 % tile]) }
    }
  }
}

// MARK: - Flips

extension TileStitcher {
  /// `tile` [side,side,C] (row-major, channels last) mirrored top-to-bottom (`vertical`) and/or
  /// left-to-right (`horizontal`); each flip is its own inverse.
  public static func flip(_ tile: [Float], side s: Int, channels c: Int, vertical: Bool, horizontal: Bool) -> [Float] {
    guard vertical || horizontal else { return tile }
    var out = [Float](repeating: 0, count: tile.count)
    for y in 0..<s {
      let sy = vertical ? s - 1 - y : y
      for x in 0..<s {
        let sx = horizontal ? s - 1 - x : x
        for ch in 0..<c { out[(y * s + x) * c + ch] = tile[(sy * s + sx) * c + ch] }
      }
    }
    return out
  }

  /// The outputs of `tileFunction` for `tiles` [S,S,C], averaged over the 4 flips of each tile,
  /// each output [S',S',K] flipped back. The input tile is centred on its output tile, so flipping
  /// one flips the other. Summed in pairs, so that 4 equal outputs average to exactly that output.
  static func flipAveraged(
    _ tiles: [[Float]], grid: TileGrid, channels c: Int, outputChannels k: Int,
    tileFunction: ([[Float]]) throws -> [[Float]]
  ) throws -> [[Float]] {
    let (s, o) = (grid.inputTile, grid.outputTile)
    var flipped: [[[Float]]] = []
    for (vertical, horizontal) in [(false, false), (false, true), (true, false), (true, true)] {
      let outputs = try tileFunction(tiles.map { flip($0, side: s, channels: c, vertical: vertical, horizontal: horizontal) })
      try checkOutputs(outputs, tiles: tiles.count, side: o, channels: k)
      flipped.append(outputs.map { flip($0, side: o, channels: k, vertical: vertical, horizontal: horizontal) })
    }
    return tiles.indices.map { t in
      (0..<o * o * k).map { i in ((flipped[0][t][i] + flipped[1][t][i]) + (flipped[2][t][i] + flipped[3][t][i])) * 0.25 }
    }
  }

  /// Throws unless there is one output of side x side x channels values per tile.
  static func checkOutputs(_ outputs: [[Float]], tiles: Int, side o: Int, channels k: Int) throws {
    guard outputs.count == tiles, outputs.allSatisfy({ $0.count == o * o * k }) else {
      throw TensorError(op: "TileStitcher", "the tile function returned \(outputs.map(\.count)) values for \(tiles) "
        + "tiles; expected \(o)x\(o)x\(k) = \(o * o * k) each")
    }
  }
}
