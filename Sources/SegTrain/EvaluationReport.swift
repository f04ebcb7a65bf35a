import Foundation
import SegNN

// MARK: - Report

/// Scores of one evaluated image, on its whole stitched prediction.
public struct ImageEvaluation: Sendable {
  /// The image's name (its file, or "image i").
  public let name: String
  /// Its position among the evaluated images.
  public let index: Int
  /// Hard (argmax) Dice and IoU per class of this image alone.
  public let scores: SegmentationScores
  /// Soft Dice of the probabilities, averaged over every class (the reference's eval_dice_score
  /// for this image).
  public let softDice: Double
  /// Mean softmax cross-entropy over the image's pixels.
  public let crossEntropy: Double
}

/// Scores of a model on whole labelled images, predicted tile by tile and stitched (overlap-tile),
/// so that every pixel of every image counts once, whatever the model's tile size.
public struct EvaluationReport: Sendable {
  /// The reference's eval_dice_score: soft Dice of the probabilities over every class, per image,
  /// averaged over images and classes.
  public var softDice: Double
  /// Mean softmax cross-entropy over pixels.
  public var crossEntropy: Double
  /// Hard scores (argmax) over all images' pixels pooled.
  public var scores: SegmentationScores
  /// Scores of each image, in order.
  public var perImage: [ImageEvaluation]

  /// Number of classes K.
  public var classes: Int { scores.confusion.classes }
  /// 1 - softDice, the reference's eval_dice_loss.
  public var diceLoss: Double { 1 - softDice }
  /// Hard foreground Dice of each image, in order.
  public var perImageDice: [Double] { perImage.map(\.scores.foregroundDice) }
  /// Mean over images of the hard Dice averaged over the foreground classes.
  public var meanDice: Double { mean(perImageDice) }
  /// Mean over images of the hard IoU averaged over the foreground classes.
  public var meanIoU: Double { mean(perImage.map(\.scores.foregroundIoU)) }

  private func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
}

// MARK: - JSON

/// The report as written to a file (evaluate's output): snake_case keys, per-class lists indexed by class.
public struct EvaluationJSON: Codable, Equatable, Sendable {
  /// Scores of one image.
  public struct Image: Codable, Equatable, Sendable {
    /// The image's name (its file, or "image i").
    public var name: String
    /// Its position among the evaluated images.
    public var index: Int
    /// Hard Dice of each class 0..<K.
    public var dice: [Double]
    /// Hard IoU of each class 0..<K.
    public var iou: [Double]
    /// Dice and IoU averaged over the foreground classes 1..<K.
    public var meanDice, meanIoU: Double
    /// Soft Dice over every class (eval_dice_score of this image).
    public var softDice: Double

    enum CodingKeys: String, CodingKey {
      case name, index, dice, iou, meanDice = "mean_dice", meanIoU = "mean_iou", softDice = "soft_dice"
    }
  }

  /// Pooled scores of one class over every image's pixels.
  public struct ClassScores: Codable, Equatable, Sendable {
    /// The class index.
    public var `class`: Int
    /// Hard Dice and IoU of the class over all images' pixels.
    public var dice, iou: Double
    /// Pixels of this class in the truth and in the prediction.
    public var truePixels, predictedPixels: Int

    enum CodingKeys: String, CodingKey {
      case `class`, dice, iou, truePixels = "true_pixels", predictedPixels = "predicted_pixels"
    }
  }

  /// Number of classes K.
  public var classes: Int
  /// Number of images evaluated.
  public var images: Int
  /// Mean over images of the foreground Dice (the headline score).
  public var meanDice: Double
  /// Mean over images of the foreground IoU.
  public var meanIoU: Double
  /// The reference's eval_dice_score.
  public var softDice: Double
  /// Mean softmax cross-entropy over all pixels.
  public var crossEntropy: Double
  /// Foreground Dice and IoU of all pixels pooled, and the fraction of pixels classified right.
  public var pooledDice, pooledIoU, pixelAccuracy: Double
  /// Scores of each image, in order.
  public var perImage: [Image]
  /// Pooled scores of each class 0..<K.
  public var perClass: [ClassScores]

  enum CodingKeys: String, CodingKey {
    case classes, images, meanDice = "mean_dice", meanIoU = "mean_iou", softDice = "soft_dice",
      crossEntropy = "cross_entropy", pooledDice = "pooled_dice", pooledIoU = "pooled_iou",
      pixelAccuracy = "pixel_accuracy", perImage = "per_image", perClass = "per_class"
  }
}

extension EvaluationReport {
  /// The report's JSON form.
  public var json: EvaluationJSON {
    let m = scores.confusion
    return EvaluationJSON(
      classes: classes, images: perImage.count, meanDice: meanDice, meanIoU: meanIoU, softDice: softDice,
      crossEntropy: crossEntropy, pooledDice: scores.foregroundDice, pooledIoU: scores.foregroundIoU,
      pixelAccuracy: scores.pixelAccuracy,
      perImage: perImage.map {
        .init(name: $0.name, index: $0.index, dice: $0.scores.perClassDice, iou: $0.scores.perClassIoU,
              meanDice: $0.scores.foregroundDice, meanIoU: $0.scores.foregroundIoU, softDice: $0.softDice)
      },
      perClass: (0..<classes).map { c in
        .init(class: c, dice: scores.perClassDice[c], iou: scores.perClassIoU[c],
              truePixels: (0..<classes).reduce(0) { $0 + m[truth: c, predicted: $1] },
              predictedPixels: (0..<classes).reduce(0) { $0 + m[truth: $1, predicted: c] })
      })
  }

  /// The JSON text, pretty-printed with sorted keys, UTF-8.
  public func jsonData() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(json)
  }
}

// MARK: - Table

extension EvaluationReport {
  /// A text table for people: one row per image with its foreground Dice and IoU (and, for more
  /// than one foreground class, the Dice of each), then the mean over images, the pooled scores
  /// and the soft Dice. `names` names the classes by index (0 = background); classes without one
  /// are called "class c".
  public func table(names: [String] = []) -> String {
    let k = classes
    let className = { (c: Int) in c < names.count ? names[c] : "class \(c)" }
    let perClassColumns = k > 2 ? Array(1..<k) : []
    let header = ["image", "Dice", "IoU"] + perClassColumns.map { "Dice \(className($0))" }
    var rows: [[String]] = perImage.map { image in
      [image.name, Self.format(image.scores.foregroundDice), Self.format(image.scores.foregroundIoU)]
        + perClassColumns.map { Self.format(image.scores.perClassDice[$0]) }
    }
    rows.append(["mean of \(perImage.count) image" + (perImage.count == 1 ? "" : "s"), Self.format(meanDice), Self.format(meanIoU)]
      + perClassColumns.map { c in Self.format(perImage.isEmpty ? 0 : perImage.reduce(0) { $0 + $1.scores.perClassDice[c] } / Double(perImage.count)) })
    rows.append(["all pixels pooled", Self.format(scores.foregroundDice), Self.format(scores.foregroundIoU)]
      + perClassColumns.map { Self.format(scores.perClassDice[$0]) })

    let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { i, cell in
        let pad = String(repeating: " ", count: widths[i] - cell.count)
        return i == 0 ? cell + pad : pad + cell  // names left, numbers right
      }.joined(separator: "  ")
    }
    let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))
    let body = [line(header), rule] + rows.dropLast(2).map(line) + [rule] + rows.suffix(2).map(line)
    return (body + [String(format: "soft Dice (eval_dice_score) %.4f, cross-entropy %.4f, pixel accuracy %.4f",
                           softDice, crossEntropy, scores.pixelAccuracy)]).joined(separator: "\n")
  }

  private static func format(_ x: Double) -> String { String(format: "%.4f", x) }
}
