import SegCore
import SegData
import SegNN

// MARK: - Tiles

/// Cuts training tiles from labelled slices as the paper's overlap-tile strategy: an output window
/// of the model's output size inside the slice, and the input tile around it (larger by the valid
/// convolutions' margin), mirrored where it crosses the border. Images are scaled as the reference
/// (x / 127.5 - 1), every channel alike; targets are one-hot from the slices' class indices.
/// `TrainingPipeline`, the one source of training batches, cuts its tiles here.
public struct TileSampler {
  public let slices: [LabelledSlice]
  public let inputSize: Int
  public let outputSize: Int
  public let classes: Int
  /// Channels C of every slice and of the model's input.
  public let channels: Int

  /// Throws `SettingError` naming the input size when the output tile does not fit in a slice,
  /// the classes when a label is not below the class count, the input channels when a slice has
  /// other channels than the model takes.
  public init(slices: [LabelledSlice], config: UNetConfig) throws {
    if let small = slices.first(where: { $0.width < config.outputSize || $0.height < config.outputSize }) {
      throw SettingError(
        .inputSize, value: config.inputSize,
        "gives \(config.outputSize)x\(config.outputSize) outputs, larger than a \(small.width)x\(small.height) slice")
    }
    try TileSampler.checkLabels(slices, classes: config.classes)
    try TileSampler.checkChannels(slices, channels: config.inputChannels)
    self.slices = slices
    channels = config.inputChannels
    inputSize = config.inputSize
    outputSize = config.outputSize
    classes = config.classes
  }
}

// MARK: - Cutting

extension TileSampler {
  /// Throws `SettingError` naming the classes, the slice and the pixel of the first label that is
  /// no class index.
  public static func checkLabels(_ slices: [LabelledSlice], classes: Int) throws {
    for (i, sl) in slices.enumerated() {
      guard let k = sl.label.firstIndex(where: { Int($0) >= classes }) else { continue }
      throw SettingError(
        .classes, value: classes,
        "training slice \(i) has label value \(sl.label[k]) at x \(k % sl.width), y \(k / sl.width); with \(classes) classes labels must be 0...\(classes - 1)")
    }
  }

  /// Throws `SettingError` naming the input channels and the first slice whose channel count is
  /// not the model's.
  public static func checkChannels(_ slices: [LabelledSlice], channels: Int) throws {
    guard let i = slices.firstIndex(where: { $0.channels != channels }) else { return }
    throw SettingError(
      .inputChannels, value: channels,
      "training slice \(i) has \(slices[i].channels) channel(s), the model expects \(channels)")
  }

  /// The `size` x `size` x C image tile centred on the `window` x `window` output window whose
  /// top-left corner is (x, y) in the slice, mirrored beyond the slice's border, scaled
  /// (x / 127.5 - 1), channels in the slice's order.
  public static func imageTile(_ slice: LabelledSlice, x: Int, y: Int, window: Int, size: Int) -> ImageTile {
    let (xs, ys) = mirroredAxes(slice, x: x, y: y, window: window, size: size)
    let c = slice.channels
    var values = [Float](repeating: 0, count: size * size * c)
    slice.image.withUnsafeBufferPointer { src in
      values.withUnsafeMutableBufferPointer { dst in
        for ty in 0..<size {
          let row = ys[ty] * slice.width
          for tx in 0..<size {
            let from = (row + xs[tx]) * c, to = (ty * size + tx) * c
            for ch in 0..<c { dst[to + ch] = Float(src[from + ch]) / 127.5 - 1 }
          }
        }
      }
    }
    return ImageTile(height: size, width: size, channels: c, values: values)
  }

  /// The label tile cut as `imageTile` (any `size`, e.g. the window itself or the whole input
  /// tile): the slice's class indices.
  public static func labelTile(_ slice: LabelledSlice, x: Int, y: Int, window: Int, size: Int) -> LabelTile {
    let (xs, ys) = mirroredAxes(slice, x: x, y: y, window: window, size: size)
    var out = [UInt8](repeating: 0, count: size * size)
    for ty in 0..<size {
      let row = ys[ty] * slice.width
      for tx in 0..<size { out[ty * size + tx] = slice.label[row + xs[tx]] }
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
  public static func resizePadTiles(_ slice: LabelledSlice, outputSize o: Int, inputSize s: Int) -> (ImageTile, LabelTile) {
    let (w, h, c) = (slice.width, slice.height, slice.channels)
    let pad = (s - o) / 2
    let scaleX = Double(w) / Double(o), scaleY = Double(h) / Double(o)
    var image = [Float](repeating: 0, count: s * s * c)
    var label = [UInt8](repeating: 0, count: s * s)
    for ty in 0..<o {
      let fy = max((Double(ty) + 0.5) * scaleY - 0.5, 0)
      let y0 = min(Int(fy), h - 1), y1 = min(y0 + 1, h - 1), ay = Float(fy - Double(y0))
      let ny = min(Int((Double(ty) + 0.5) * scaleY), h - 1)
      for tx in 0..<o {
        let fx = max((Double(tx) + 0.5) * scaleX - 0.5, 0)
        let x0 = min(Int(fx), w - 1), x1 = min(x0 + 1, w - 1), ax = Float(fx - Double(x0))
        let k = (ty + pad) * s + tx + pad
        for ch in 0..<c {
          func pixel(_ yy: Int, _ xx: Int) -> Float { Float(slice.image[(yy * w + xx) * c + ch]) / 127.5 - 1 }
          let top = pixel(y0, x0) * (1 - ax) + pixel(y0, x1) * ax
          let bottom = pixel(y1, x0) * (1 - ax) + pixel(y1, x1) * ax
          image[k * c + ch] = top * (1 - ay) + bottom * ay
        }
        let nx = min(Int((Double(tx) + 0.5) * scaleX), w - 1)
        label[k] = slice.label[ny * w + nx]
      }
    }
    return (ImageTile(height: s, width: s, channels: c, values: image), LabelTile(height: s, width: s, classes: label))
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
}
