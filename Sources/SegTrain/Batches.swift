import SegCore
import SegData
import SegNN

// MARK: - Tiles

/// Cuts training tiles from labelled slices as the paper's overlap-tile strategy: an output window
/// of the model's output size inside the slice, and the input tile around it (larger by the valid
/// convolutions' margin), mirrored where it crosses the border. Images are scaled as the reference
/// (x / 127.5 - 1); targets are one-hot (`classIndex`). `TrainingPipeline` cuts its tiles here too.
public struct TileSampler {
  public let slices: [LabelledSlice]
  public let inputSize: Int
  public let outputSize: Int
  public let classes: Int

  /// Fails naming `--input-size` when the output tile does not fit in a slice, `--classes` when a
  /// label is not below the class count.
  public init(slices: [LabelledSlice], config: UNetConfig) throws {
    if let small = slices.first(where: { $0.width < config.outputSize || $0.height < config.outputSize }) {
      throw ModelConfigError(
        option: "--input-size",
        message: "tile \(config.inputSize) gives \(config.outputSize)x\(config.outputSize) outputs, larger than a \(small.width)x\(small.height) slice")
    }
    try TileSampler.checkLabels(slices, classes: config.classes)
    self.slices = slices
    inputSize = config.inputSize
    outputSize = config.outputSize
    classes = config.classes
  }

  /// A batch of tiles at positions and flips drawn from (seed, step, index in batch): images
  /// [N,S,S,1] and one-hot targets [N,S',S',classes].
  public func randomBatch(size n: Int, seed: UInt64, step: Int, augment: Bool, on backend: any Backend) throws -> (Tensor, Tensor) {
    var batch = BatchAssembler(count: n, inputSize: inputSize, channels: 1, outputSize: outputSize, classes: classes)
    for i in 0..<n {
      var rng = CounterRandom(seed: seed, stream: UInt64(step) << 16 | UInt64(i))
      let sl = slices[rng.nextInt(slices.count)]
      let x = rng.nextInt(sl.width - outputSize + 1), y = rng.nextInt(sl.height - outputSize + 1)
      var plan = AugmentationPlan()
      plan.flipX = augment && rng.nextInt(2) == 1
      plan.flipY = augment && rng.nextInt(2) == 1
      let image = TileSampler.imageTile(sl, x: x, y: y, window: outputSize, size: inputSize)
      let label = TileSampler.labelTile(sl, x: x, y: y, window: outputSize, size: outputSize, classes: classes)
      let (a, b) = Augmentation.apply(plan, image: image, label: label)
      batch.put(i, image: a, label: b)
    }
    return try batch.tensors(on: backend)
  }
}

// MARK: - Cutting

extension TileSampler {
  /// The class of a mask value: with two classes, 0/255 masks (> 127 is class 1, the reference's
  /// threshold) and 0/1 index masks both work; with more, the value is the class index.
  @inline(__always)
  public static func classIndex(_ value: UInt8, classes: Int) -> UInt8 {
    classes == 2 ? (value > 127 || value == 1 ? 1 : 0) : value
  }

  /// Throws naming `--classes`, the slice and the pixel of the first mask value that is no class.
  public static func checkLabels(_ slices: [LabelledSlice], classes: Int) throws {
    for (i, sl) in slices.enumerated() {
      guard let k = sl.label.firstIndex(where: { Int(classIndex($0, classes: classes)) >= classes }) else { continue }
      throw ModelConfigError(
        option: "--classes",
        message: "training slice \(i) has label value \(sl.label[k]) at x \(k % sl.width), y \(k / sl.width); with \(classes) classes labels must be 0...\(classes - 1)")
    }
  }

  /// The `size` x `size` image tile centred on the `window` x `window` output window whose top-left
  /// corner is (x, y) in the slice, mirrored beyond the slice's border, scaled (x / 127.5 - 1).
  public static func imageTile(_ slice: LabelledSlice, x: Int, y: Int, window: Int, size: Int) -> ImageTile {
    let (xs, ys) = mirroredAxes(slice, x: x, y: y, window: window, size: size)
    var values = [Float](repeating: 0, count: size * size)
    slice.image.withUnsafeBufferPointer { src in
      values.withUnsafeMutableBufferPointer { dst in
        for ty in 0..<size {
          let row = ys[ty] * slice.width
          for tx in 0..<size { dst[ty * size + tx] = Float(src[row + xs[tx]]) / 127.5 - 1 }
        }
      }
    }
    return ImageTile(height: size, width: size, channels: 1, values: values)
  }

  /// The label tile cut as `imageTile` (any `size`, e.g. the window itself or the whole input
  /// tile), as class indices.
  public static func labelTile(_ slice: LabelledSlice, x: Int, y: Int, window: Int, size: Int, classes: Int) -> LabelTile {
    let (xs, ys) = mirroredAxes(slice, x: x, y: y, window: window, size: size)
    var out = [UInt8](repeating: 0, count: size * size)
    for ty in 0..<size {
      let row = ys[ty] * slice.width
      for tx in 0..<size { out[ty * size + tx] = classIndex(slice.label[row + xs[tx]], classes: classes) }
    }
    return LabelTile(height: size, width: size, classes: out)
  }

  /// Slice columns and rows read by a tile: mirrored once per axis rather than per pixel.
  private static func mirroredAxes(_ slice: LabelledSlice, x: Int, y: Int, window: Int, size: Int) -> ([Int], [Int]) {
    let margin = (size - window) / 2
    return ((0..<size).map { reflectIndex(x - margin + $0, size: slice.width) },
            (0..<size).map { reflectIndex(y - margin + $0, size: slice.height) })
  }

  /// NVIDIA's geometry: the whole slice resized to `outputSize` (bilinear for the image, nearest
  /// for the label, half-pixel centres as TF2's tf.image.resize), then centred in `inputSize` with
  /// zeros around (0 in the scaled image, class 0 in the label, as the reference).
  public static func resizePadTiles(_ slice: LabelledSlice, outputSize o: Int, inputSize s: Int, classes: Int) -> (ImageTile, LabelTile) {
    let (w, h) = (slice.width, slice.height)
    let pad = (s - o) / 2
    let scaleX = Double(w) / Double(o), scaleY = Double(h) / Double(o)
    var image = [Float](repeating: 0, count: s * s)
    var label = [UInt8](repeating: 0, count: s * s)
    for ty in 0..<o {
      let fy = max((Double(ty) + 0.5) * scaleY - 0.5, 0)
      let y0 = min(Int(fy), h - 1), y1 = min(y0 + 1, h - 1), ay = Float(fy - Double(y0))
      let ny = min(Int((Double(ty) + 0.5) * scaleY), h - 1)
      for tx in 0..<o {
        let fx = max((Double(tx) + 0.5) * scaleX - 0.5, 0)
        let x0 = min(Int(fx), w - 1), x1 = min(x0 + 1, w - 1), ax = Float(fx - Double(x0))
        func pixel(_ yy: Int, _ xx: Int) -> Float { Float(slice.image[yy * w + xx]) / 127.5 - 1 }
        let top = pixel(y0, x0) * (1 - ax) + pixel(y0, x1) * ax
        let bottom = pixel(y1, x0) * (1 - ax) + pixel(y1, x1) * ax
        let k = (ty + pad) * s + tx + pad
        image[k] = top * (1 - ay) + bottom * ay
        let nx = min(Int((Double(tx) + 0.5) * scaleX), w - 1)
        label[k] = classIndex(slice.label[ny * w + nx], classes: classes)
      }
    }
    return (ImageTile(height: s, width: s, channels: 1, values: image), LabelTile(height: s, width: s, classes: label))
  }
}

// MARK: - Assembling batches

/// Host buffers of one batch: images [N,S,S,C] and one-hot targets [N,S',S',K].
struct BatchAssembler {
  let count, inputSize, channels, outputSize, classes: Int
  var images: [Float]
  var targets: [Float]

  init(count: Int, inputSize: Int, channels: Int, outputSize: Int, classes: Int) {
    (self.count, self.inputSize, self.channels, self.outputSize, self.classes) = (count, inputSize, channels, outputSize, classes)
    images = [Float](repeating: 0, count: count * inputSize * inputSize * channels)
    targets = [Float](repeating: 0, count: count * outputSize * outputSize * classes)
  }

  var imageShape: [Int] { [count, inputSize, inputSize, channels] }
  var targetShape: [Int] { [count, outputSize, outputSize, classes] }

  /// Places sample `b`: an S x S x C image and an S' x S' label of class indices below `classes`.
  mutating func put(_ b: Int, image: ImageTile, label: LabelTile) {
    let n = image.values.count, m = outputSize * outputSize
    images.replaceSubrange(b * n..<(b + 1) * n, with: image.values)
    // Checked indexing: a label >= classes traps rather than writing into the next pixel.
    for i in 0..<m {
      let k = Int(label.classes[i])
      precondition(k < classes, "label \(k) with \(classes) classes")
      targets[(b * m + i) * classes + k] = 1
    }
  }

  func tensors(on backend: any Backend) throws -> (Tensor, Tensor) {
    (try Tensor(shape: Shape(imageShape), floats: images, on: backend),
     try Tensor(shape: Shape(targetShape), floats: targets, on: backend))
  }
}
