import SegCore
import SegData
import SegNN

// MARK: - Tiles

/// Cuts training tiles from labelled slices as the paper's overlap-tile strategy: an output window
/// of the model's output size inside the slice, and the input tile around it (larger by the valid
/// convolutions' margin), mirrored where it crosses the border. Images are scaled as the reference
/// (x / 127.5 - 1); targets are one-hot with class 1 = cell interior (label > 127).
public struct TileSampler {
  public let slices: [LabelledSlice]
  public let inputSize: Int
  public let outputSize: Int
  public let classes: Int

  /// Fails naming `--input-size` when the output tile does not fit in a slice.
  public init(slices: [LabelledSlice], config: UNetConfig) throws {
    if let small = slices.first(where: { $0.width < config.outputSize || $0.height < config.outputSize }) {
      throw ModelConfigError(
        option: "--input-size",
        message: "tile \(config.inputSize) gives \(config.outputSize)x\(config.outputSize) outputs, larger than a \(small.width)x\(small.height) slice")
    }
    self.slices = slices
    inputSize = config.inputSize
    outputSize = config.outputSize
    classes = config.classes
  }

  /// A batch of tiles at positions and flips drawn from (seed, step, index in batch): images
  /// [N,S,S,1] and one-hot targets [N,S',S',classes].
  public func randomBatch(size n: Int, seed: UInt64, step: Int, augment: Bool, on backend: any Backend) throws -> (Tensor, Tensor) {
    let picks = (0..<n).map { i -> Tile in
      var rng = CounterRandom(seed: seed, stream: UInt64(step) << 16 | UInt64(i))
      let s = rng.nextInt(slices.count)
      let sl = slices[s]
      return Tile(slice: s, x: rng.nextInt(sl.width - outputSize + 1), y: rng.nextInt(sl.height - outputSize + 1),
                  flipX: augment && rng.nextInt(2) == 1, flipY: augment && rng.nextInt(2) == 1)
    }
    return try batch(picks, on: backend)
  }

  /// One tile: the slice and the top-left corner of the output window in it.
  struct Tile {
    var slice, x, y: Int
    var flipX = false, flipY = false
  }

  private func batch(_ picks: [Tile], on backend: any Backend) throws -> (Tensor, Tensor) {
    let s = inputSize, o = outputSize, margin = (inputSize - outputSize) / 2
    var images = [Float](repeating: 0, count: picks.count * s * s)
    var targets = [Float](repeating: 0, count: picks.count * o * o * classes)
    for (b, p) in picks.enumerated() {
      let sl = slices[p.slice]
      for ty in 0..<s {
        let sy = reflectIndex(p.y - margin + (p.flipY ? s - 1 - ty : ty), size: sl.height)
        for tx in 0..<s {
          let sx = reflectIndex(p.x - margin + (p.flipX ? s - 1 - tx : tx), size: sl.width)
          images[(b * s + ty) * s + tx] = Float(sl.image[sy * sl.width + sx]) / 127.5 - 1
        }
      }
      for uy in 0..<o {
        let sy = p.y + (p.flipY ? o - 1 - uy : uy)
        for ux in 0..<o {
          let sx = p.x + (p.flipX ? o - 1 - ux : ux)
          let cls = sl.label[sy * sl.width + sx] > 127 ? 1 : 0
          targets[((b * o + uy) * o + ux) * classes + cls] = 1
        }
      }
    }
    return (try Tensor(shape: [picks.count, s, s, 1], floats: images, on: backend),
            try Tensor(shape: [picks.count, o, o, classes], floats: targets, on: backend))
  }
}
