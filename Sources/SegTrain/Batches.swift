import SegCore
import SegData
import SegNN

// MARK: - Tiles

/// Cuts training tiles from labelled slices: an input tile of the model's input size and the
/// centred label tile of its output size, with the reference's scaling (x / 127.5 - 1) and
/// one-hot labels (class 1 = cell interior, label > 127).
public struct TileSampler {
  public let slices: [LabelledSlice]
  public let inputSize: Int
  public let outputSize: Int
  public let classes: Int

  public init(slices: [LabelledSlice], config: UNetConfig) throws {
    if let small = slices.first(where: { $0.width < config.inputSize || $0.height < config.inputSize }) {
      throw ModelConfigError(
        option: "--input-size", message: "\(config.inputSize) is larger than a \(small.width)x\(small.height) slice")
    }
    self.slices = slices
    inputSize = config.inputSize
    outputSize = config.outputSize
    classes = config.classes
  }

  /// A batch of tiles at positions and flips drawn from (seed, step): images [N,S,S,1] and
  /// one-hot targets [N,S',S',classes].
  public func randomBatch(size n: Int, seed: UInt64, step: Int, augment: Bool, on backend: any Backend) throws -> (Tensor, Tensor) {
    var picks: [(slice: Int, x: Int, y: Int, flipX: Bool, flipY: Bool)] = []
    for i in 0..<n {
      var rng = CounterRandom(seed: seed, stream: UInt64(step) << 16 | UInt64(i))
      let s = rng.nextInt(slices.count)
      let sl = slices[s]
      picks.append((s, rng.nextInt(sl.width - inputSize + 1), rng.nextInt(sl.height - inputSize + 1),
                    augment && rng.nextInt(2) == 1, augment && rng.nextInt(2) == 1))
    }
    return try batch(picks, on: backend)
  }

  /// The tile at the centre of each slice (evaluation).
  public func centreBatch(on backend: any Backend) throws -> (Tensor, Tensor) {
    try batch(slices.indices.map { ($0, (slices[$0].width - inputSize) / 2, (slices[$0].height - inputSize) / 2, false, false) }, on: backend)
  }

  private func batch(_ picks: [(slice: Int, x: Int, y: Int, flipX: Bool, flipY: Bool)], on backend: any Backend) throws -> (Tensor, Tensor) {
    let s = inputSize, o = outputSize, margin = (inputSize - outputSize) / 2
    var images = [Float](repeating: 0, count: picks.count * s * s)
    var targets = [Float](repeating: 0, count: picks.count * o * o * classes)
    for (b, p) in picks.enumerated() {
      let sl = slices[p.slice]
      for ty in 0..<s {
        for tx in 0..<s {
          let sy = p.y + (p.flipY ? s - 1 - ty : ty), sx = p.x + (p.flipX ? s - 1 - tx : tx)
          images[(b * s + ty) * s + tx] = Float(sl.image[sy * sl.width + sx]) / 127.5 - 1
          let (oy, ox) = (ty - margin, tx - margin)
          if (0..<o).contains(oy), (0..<o).contains(ox) {
            let cls = sl.label[sy * sl.width + sx] > 127 ? 1 : 0
            targets[((b * o + oy) * o + ox) * classes + cls] = 1
          }
        }
      }
    }
    return (try Tensor(shape: [picks.count, s, s, 1], floats: images, on: backend),
            try Tensor(shape: [picks.count, o, o, classes], floats: targets, on: backend))
  }
}
