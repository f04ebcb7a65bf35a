import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Report

/// Scores of a model on whole labelled images, predicted tile by tile and stitched (overlap-tile),
/// so that every pixel of every image counts once, whatever the model's tile size.
public struct EvaluationReport: Sendable {
  /// The reference's eval_dice_score: soft Dice of the probabilities over every class, per image,
  /// averaged over images and classes.
  public var softDice = 0.0
  /// Mean softmax cross-entropy over pixels.
  public var crossEntropy = 0.0
  /// Hard scores (argmax) over all images' pixels pooled.
  public var scores: SegmentationScores
  /// Hard foreground Dice of each image, in order.
  public var perImageDice: [Double] = []

  /// 1 - softDice, the reference's eval_dice_loss.
  public var diceLoss: Double { 1 - softDice }
  /// Mean over images of the hard foreground Dice.
  public var meanDice: Double { perImageDice.isEmpty ? 0 : perImageDice.reduce(0, +) / Double(perImageDice.count) }
}

// MARK: - Evaluation

/// Evaluates `model` on `slices` (labels 0/255; class 1 = interior, label > 127).
public func evaluate(_ model: UNet, on slices: [LabelledSlice], batchSize: Int) throws -> EvaluationReport {
  let predictor = try TiledPredictor(model: model, batchSize: batchSize)
  let k = model.config.classes
  var confusion = try ConfusionMatrix(classes: k)
  var softDiceSum = 0.0, ceSum = 0.0, pixels = 0
  var perImage: [Double] = []
  for slice in slices {
    let p = try predictor.predict(GrayImage(width: slice.width, height: slice.height, pixels: slice.image))
    let truth = slice.label.map { Int32($0 > 127 ? 1 : 0) }
    // Soft Dice per class of this image, and cross-entropy, from the stitched probabilities.
    var intersection = [Double](repeating: 0, count: k), denominator = [Double](repeating: 0, count: k)
    for (i, t) in truth.enumerated() {
      for c in 0..<k {
        let prob = Double(p.probabilities[i * k + c]), target = c == Int(t) ? 1.0 : 0.0
        intersection[c] += prob * target
        denominator[c] += prob * prob + target
      }
      ceSum -= Foundation.log(max(Double(p.probabilities[i * k + Int(t)]), 1e-12))
    }
    softDiceSum += (0..<k).reduce(0.0) { $0 + (2 * intersection[$1] + diceSmoothing) / (denominator[$1] + diceSmoothing) } / Double(k)
    pixels += truth.count
    try confusion.add(predicted: p.classIndices, truth: truth)
    perImage.append(try SegmentationScores(predicted: p.classIndices, truth: truth, classes: k).foregroundDice)
  }
  return EvaluationReport(
    softDice: softDiceSum / Double(max(slices.count, 1)), crossEntropy: ceSum / Double(max(pixels, 1)),
    scores: SegmentationScores(confusion: confusion), perImageDice: perImage)
}

/// Predicted masks of `images`: 255 where the model says cell interior (class 1), else 0; for more
/// than two classes, the class index.
public func predictMasks(_ model: UNet, images: [GrayImage], batchSize: Int) throws -> [GrayImage] {
  let predictor = try TiledPredictor(model: model, batchSize: batchSize)
  let binary = model.config.classes == 2
  return try images.map { image in
    let p = try predictor.predict(image)
    return GrayImage(width: p.width, height: p.height, pixels: p.classIndices.map { binary ? ($0 == 1 ? 255 : 0) : UInt8(clamping: $0) })
  }
}
