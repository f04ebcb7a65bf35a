import Foundation
import SegCore

// MARK: - Photometric units

// Each photometric augmentation changes image values, one at a time, and never a label.
// `Augmentation` applies them in the order contrast, brightness, noise, then clips to [-1, 1].

/// `contrast`: each channel's deviations from its tile mean scaled by `factor`.
struct Contrast {
  let factor: Float
  /// Each channel's mean over the tile (zeros when the factor is 1: nothing to scale about).
  let means: [Float]

  /// The contrast change of `tile` by `factor`.
  init(factor: Double, of tile: ImageTile) {
    let c = tile.channels, pixels = tile.height * tile.width
    var means = [Float](repeating: 0, count: c)
    if factor != 1, pixels > 0 {
      var sums = [Double](repeating: 0, count: c)
      for i in 0..<pixels { for k in 0..<c { sums[k] += Double(tile.values[i * c + k]) } }
      means = sums.map { Float($0 / Double(pixels)) }
    }
    (self.factor, self.means) = (Float(factor), means)
  }

  @inline(__always)
  func apply(_ x: Float, channel k: Int) -> Float { (x - means[k]) * factor + means[k] }
}

/// `brightness`: one shift added to every value.
struct Brightness {
  let delta: Float

  @inline(__always)
  func apply(_ x: Float) -> Float { x + delta }
}

/// `noise`: Gaussian noise of standard deviation `std`, its values from a seed.
struct Noise {
  let std: Float
  private var stream: GaussianStream

  init(std: Double, seed: UInt64) {
    self.std = Float(std)
    stream = GaussianStream(seed: seed)
  }

  @inline(__always)
  mutating func apply(_ x: Float) -> Float { std > 0 ? x + std * stream.next() : x }
}

/// Standard normal Floats from a seed: SplitMix64 bits through Box-Muller, both outputs used.
struct GaussianStream {
  private var bits: SplitMix64
  private var spare: Float?

  init(seed: UInt64) { bits = SplitMix64(seed: seed) }

  mutating func next() -> Float {
    if let s = spare { spare = nil; return s }
    let u = max(bits.nextUnit(), 1e-300), v = bits.nextUnit()
    let r = (-2 * Foundation.log(u)).squareRoot(), t = 2 * Double.pi * v
    spare = Float(r * Foundation.sin(t))
    return Float(r * Foundation.cos(t))
  }
}
