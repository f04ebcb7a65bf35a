import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Accumulation

/// Gathers the scores of whole-image predictions one image at a time, so that images of any size,
/// channel count or source can be evaluated alike; `report` gives the scores so far.
public struct EvaluationAccumulator: Sendable {
  /// Number of classes K.
  public let classes: Int
  private var confusion: ConfusionMatrix
  private var softDiceSum = 0.0, ceSum = 0.0, pixels = 0
  private var perImage: [ImageEvaluation] = []

  /// An empty accumulator for `classes` (at least 2).
  public init(classes: Int) throws {
    self.classes = classes
    confusion = try ConfusionMatrix(classes: classes)
  }

  /// Adds one image's prediction against its true classes [H,W] (row-major, values in
  /// 0..<classes). Errors name the image.
  public mutating func add(name: String, prediction p: TiledPrediction, truth: [Int32]) throws {
    let k = classes
    guard p.classes == k else {
      throw DataError(path: name, "the prediction has \(p.classes) classes, but the evaluation counts \(k)")
    }
    guard truth.count == p.height * p.width else {
      throw DataError(path: name, "\(truth.count) label pixels for a \(p.width)x\(p.height) image")
    }
    if let bad = truth.firstIndex(where: { $0 < 0 || $0 >= Int32(k) }) {
      throw DataError(path: name, "label \(truth[bad]) at x \(bad % p.width), y \(bad / p.width) is not a class "
        + "index in 0..<\(k)")
    }
    // Soft Dice per class of this image, and cross-entropy, from the stitched probabilities.
    var intersection = [Double](repeating: 0, count: k), denominator = [Double](repeating: 0, count: k)
    var ce = 0.0
    for (i, t) in truth.enumerated() {
      for c in 0..<k {
        let prob = Double(p.probabilities[i * k + c]), target = c == Int(t) ? 1.0 : 0.0
        intersection[c] += prob * target
        denominator[c] += prob * prob + target
      }
      ce -= Foundation.log(max(Double(p.probabilities[i * k + Int(t)]), 1e-12))
    }
    let softDice = (0..<k).reduce(0.0) { $0 + (2 * intersection[$1] + diceSmoothing) / (denominator[$1] + diceSmoothing) } / Double(k)
    softDiceSum += softDice
    ceSum += ce
    pixels += truth.count
    try confusion.add(predicted: p.classIndices, truth: truth)
    perImage.append(ImageEvaluation(
      name: name, index: perImage.count, scores: try SegmentationScores(predicted: p.classIndices, truth: truth, classes: k),
      softDice: softDice, crossEntropy: ce / Double(max(truth.count, 1))))
  }

  // MARK: - Merging ranks' images

  /// The sums of the one image added, as numbers a data-parallel evaluation adds up over ranks:
  /// soft Dice, cross-entropy summed over pixels, pixels, then the K x K confusion counts.
  var imageSums: [Double] {
    [softDiceSum, ceSum, Double(pixels)] + confusion.counts.map(Double.init)
  }

  /// Adds an image scored elsewhere from its `imageSums`.
  mutating func add(name: String, sums: [Double]) throws {
    let k = classes
    var predicted: [Int32] = [], truth: [Int32] = []
    for t in 0..<k {
      for p in 0..<k {
        let n = Int(sums[3 + t * k + p])
        predicted += repeatElement(Int32(p), count: n)
        truth += repeatElement(Int32(t), count: n)
      }
    }
    let image = try ConfusionMatrix(predicted: predicted, truth: truth, classes: k)
    let imagePixels = Int(sums[2])
    softDiceSum += sums[0]
    ceSum += sums[1]
    pixels += imagePixels
    confusion = try confusion + image
    perImage.append(ImageEvaluation(
      name: name, index: perImage.count, scores: SegmentationScores(confusion: image), softDice: sums[0],
      crossEntropy: sums[1] / Double(max(imagePixels, 1))))
  }

  /// The scores of the images added so far.
  public var report: EvaluationReport {
    EvaluationReport(
      softDice: softDiceSum / Double(max(perImage.count, 1)), crossEntropy: ceSum / Double(max(pixels, 1)),
      scores: SegmentationScores(confusion: confusion), perImage: perImage)
  }
}

// MARK: - Evaluation

/// Evaluates `model` on `slices` (images with the model's channels, labels class indices), named
/// "image i"; `compile` compiles the forward pass (`--xla`).
public func evaluate(
  _ model: UNet, on slices: [LabelledSlice], batchSize: Int, window: SlidingWindow = SlidingWindow(),
  compile: CompileOptions? = nil
) throws -> EvaluationReport {
  let predictor = try TiledPredictor(model: model, batchSize: batchSize, window: window, compile: compile)
  var scores = try EvaluationAccumulator(classes: predictor.classes)
  for (i, s) in slices.enumerated() {
    try scores.add(name: "image \(i)", prediction: predictor.predict(s.imageFile), truth: s.label.map(Int32.init))
  }
  return scores.report
}

/// Evaluates `model` on named grayscale images whose labels are class indices [H,W] in 0..<K.
public func evaluate(
  _ model: UNet, on images: [(name: String, image: GrayImage, classes: [Int32])], batchSize: Int,
  window: SlidingWindow = SlidingWindow()
) throws -> EvaluationReport {
  try evaluate(TiledPredictor(model: model, batchSize: batchSize, window: window), on: images)
}

/// Evaluates `predictor` on named grayscale images whose labels are class indices [H,W] in 0..<K.
public func evaluate(
  _ predictor: TiledPredictor, on images: [(name: String, image: GrayImage, classes: [Int32])]
) throws -> EvaluationReport {
  var scores = try EvaluationAccumulator(classes: predictor.classes)
  for item in images {
    guard item.classes.count == item.image.width * item.image.height else {
      throw DataError(path: item.name, "\(item.classes.count) label pixels for a \(item.image.width)x\(item.image.height) image")
    }
    try scores.add(name: item.name, prediction: predictor.predict(item.image), truth: item.classes)
  }
  return scores.report
}

/// Predicted masks of `images`: 255 where the model says cell interior (class 1), else 0; for more
/// than two classes, the class index.
public func predictMasks(
  _ model: UNet, images: [GrayImage], batchSize: Int, window: SlidingWindow = SlidingWindow()
) throws -> [GrayImage] {
  try predictMasks(model, images: images.map { try Image($0) }, batchSize: batchSize, window: window)
}

/// Predicted masks of `images` (8- or 16-bit, with the model's channels), as the grayscale overload.
public func predictMasks(
  _ model: UNet, images: [Image], batchSize: Int, window: SlidingWindow = SlidingWindow()
) throws -> [GrayImage] {
  let predictor = try TiledPredictor(model: model, batchSize: batchSize, window: window)
  let binary = model.config.classes == 2
  return try images.map { image in
    let p = try predictor.predict(image)
    return GrayImage(width: p.width, height: p.height, pixels: p.classIndices.map { binary ? ($0 == 1 ? 255 : 0) : UInt8(clamping: $0) })
  }
}

// MARK: - Images of any depth and channels

extension TiledPredictor {
  /// Predicts an 8- or 16-bit image scaled as in training (`Image.scaledSamples`); its channels
  /// must be the model's (convert with `Image.converted(channels:)`).
  public func predict(_ image: Image) throws -> TiledPrediction {
    guard image.channels == inputChannels else {
      throw TensorError(op: "TiledPredictor", "a \(image.width)x\(image.height) image with \(image.channels) channel(s); "
        + "the model takes \(inputChannels)")
    }
    return try predict(scaled: image.scaledSamples(), height: image.height, width: image.width)
  }
}
