import SegCore

// MARK: - Confusion matrix

/// Pixel counts of (true class, predicted class) pairs over any number of images. Class indices
/// are Int32 (what `argmax` gives), one per pixel, in any layout shared by prediction and truth
/// (e.g. [N*H*W] row-major).
public struct ConfusionMatrix: Equatable, Sendable {
  /// Number of classes K.
  public let classes: Int
  /// K x K counts, row-major: counts[t * K + p] pixels of true class t were predicted as p.
  public private(set) var counts: [Int]

  /// An empty matrix for `classes` (at least 2: background and one class).
  public init(classes: Int) throws {
    guard classes >= 2 else {
      throw TensorError(op: "ConfusionMatrix", "\(classes) classes; need at least 2 (background and one class)")
    }
    self.classes = classes
    counts = Array(repeating: 0, count: classes * classes)
  }

  /// The counts of `predicted` against `truth` (equal lengths, values in 0..<classes).
  public init(predicted: [Int32], truth: [Int32], classes: Int) throws {
    try self.init(classes: classes)
    try add(predicted: predicted, truth: truth)
  }

  /// Adds the pixels of one more prediction (e.g. the next image) to the counts. Throws naming the
  /// first pixel whose class is outside 0..<classes, or when the lengths differ.
  public mutating func add(predicted: [Int32], truth: [Int32]) throws {
    guard predicted.count == truth.count else {
      throw TensorError(op: "ConfusionMatrix", "\(predicted.count) predicted pixels but \(truth.count) true ones; they must match")
    }
    let k = Int32(classes)
    for (i, (p, t)) in zip(predicted, truth).enumerated() {
      guard (0..<k).contains(p), (0..<k).contains(t) else {
        let which = (0..<k).contains(p) ? "true class \(t)" : "predicted class \(p)"
        throw TensorError(op: "ConfusionMatrix", "pixel \(i): \(which) is outside 0..<\(classes)")
      }
      counts[Int(t) * classes + Int(p)] += 1
    }
  }

  /// Pixels of true class `t` predicted as `p`.
  public subscript(truth t: Int, predicted p: Int) -> Int { counts[t * classes + p] }

  /// All pixels counted.
  public var total: Int { counts.reduce(0, +) }

  /// Pixels of class `c` predicted as `c`.
  public func truePositives(_ c: Int) -> Int { self[truth: c, predicted: c] }
  /// Pixels predicted as `c` whose true class is another.
  public func falsePositives(_ c: Int) -> Int { (0..<classes).reduce(0) { $0 + ($1 == c ? 0 : self[truth: $1, predicted: c]) } }
  /// Pixels of true class `c` predicted as another.
  public func falseNegatives(_ c: Int) -> Int { (0..<classes).reduce(0) { $0 + ($1 == c ? 0 : self[truth: c, predicted: $1]) } }

  /// The element-wise sum of two matrices over the same classes (pooling images or folds).
  public static func + (a: ConfusionMatrix, b: ConfusionMatrix) throws -> ConfusionMatrix {
    guard a.classes == b.classes else {
      throw TensorError(op: "ConfusionMatrix", "cannot add matrices over \(a.classes) and \(b.classes) classes")
    }
    var sum = a
    for i in sum.counts.indices { sum.counts[i] += b.counts[i] }
    return sum
  }
}

// MARK: - Scores

/// Hard (thresholded) overlap scores per class, over all pixels a confusion matrix counts:
/// Dice = 2TP / (2TP + FP + FN), IoU (Jaccard) = TP / (TP + FP + FN). A class absent from both
/// prediction and truth scores 1 (they agree on its absence); absent from the truth but
/// predicted, it scores 0.
public struct SegmentationScores: Equatable, Sendable {
  /// The counts the scores come from.
  public let confusion: ConfusionMatrix
  /// Dice of each class, index = class.
  public let perClassDice: [Double]
  /// IoU of each class, index = class.
  public let perClassIoU: [Double]

  /// Scores from accumulated counts.
  public init(confusion: ConfusionMatrix) {
    self.confusion = confusion
    var dice: [Double] = [], iou: [Double] = []
    for c in 0..<confusion.classes {
      let tp = Double(confusion.truePositives(c))
      let wrong = Double(confusion.falsePositives(c) + confusion.falseNegatives(c))
      let empty = tp + wrong == 0
      dice.append(empty ? 1 : 2 * tp / (2 * tp + wrong))
      iou.append(empty ? 1 : tp / (tp + wrong))
    }
    perClassDice = dice
    perClassIoU = iou
  }

  /// Scores of `predicted` against `truth` (Int32 class indices, equal lengths, in 0..<classes).
  public init(predicted: [Int32], truth: [Int32], classes: Int) throws {
    self.init(confusion: try ConfusionMatrix(predicted: predicted, truth: truth, classes: classes))
  }

  /// Mean Dice over the foreground classes 1..<K (for two classes: the Dice of class 1).
  public var foregroundDice: Double { perClassDice.dropFirst().reduce(0, +) / Double(perClassDice.count - 1) }
  /// Mean IoU over the foreground classes 1..<K.
  public var foregroundIoU: Double { perClassIoU.dropFirst().reduce(0, +) / Double(perClassIoU.count - 1) }
  /// Fraction of pixels whose class is right (1 when no pixels were counted).
  public var pixelAccuracy: Double {
    let total = confusion.total
    return total == 0 ? 1 : Double((0..<confusion.classes).reduce(0) { $0 + confusion.truePositives($1) }) / Double(total)
  }
}
