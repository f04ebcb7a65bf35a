import Foundation
import SegData
import SegNN

// MARK: - Contact sheet

/// A picture of an evaluation's worst and best images by Dice (`unet evaluate` writes it as PNG):
/// one row per image with a title ("worst 1: image 3, dice 0.7132"), then the input, the truth
/// and the prediction (each class tinted and outlined over the image) side by side, every panel
/// scaled to `panel` pixels on its longer side.
public struct ContactSheet {
  /// One row: the image's title, its picture (gray or RGB) and its true and predicted classes.
  public struct Row {
    /// "worst 1: image 3, dice 0.7132".
    public var title: String
    /// The input as evaluated, 8-bit, 1 or 3 channels.
    public var image: Image
    /// True and predicted class indices [H,W] (row-major).
    public var truth, prediction: [Int32]

    /// A row titled `title` of `image` with its `truth` and `prediction`.
    public init(title: String, image: Image, truth: [Int32], prediction: [Int32]) {
      (self.title, self.image, self.truth, self.prediction) = (title, image, truth, prediction)
    }
  }

  /// The heading above the rows.
  public var heading: String
  /// The rows, top to bottom.
  public var rows: [Row]
  /// The longer side of each panel, in pixels.
  public var panel = 192

  static let margin = 16, gap = 8, titleGap = 6, rowGap = 18

  /// A sheet of `rows` under `heading`.
  public init(heading: String, rows: [Row]) { (self.heading, self.rows) = (heading, rows) }

  // MARK: - Choosing the rows

  /// The indices into `report.perImage` of its worst and best images by Dice (the per-image
  /// foreground Dice that `mean_dice` averages), at most `count` of each and no image twice: the
  /// worst first (lowest Dice first), then the best (highest first); ties go to the earlier image.
  public static func ranked(_ report: EvaluationReport, count: Int) -> (worst: [Int], best: [Int]) {
    let order = report.perImage.indices.sorted {
      let (a, b) = (report.perImage[$0].scores.foregroundDice, report.perImage[$1].scores.foregroundDice)
      return a != b ? a < b : $0 < $1
    }
    let worst = min(count, (order.count + 1) / 2)
    let best = min(count, order.count - worst)
    return (Array(order.prefix(worst)), Array(order.suffix(best).reversed()))
  }

  // MARK: - Drawing

  /// The sheet as an 8-bit RGB image.
  public func image() throws -> Image {
    let m = ContactSheet.margin, g = ContactSheet.gap, th = Canvas.textHeight()
    let sizes = rows.map { row -> (w: Int, h: Int) in
      let long = max(row.image.width, row.image.height)
      return (max(1, row.image.width * panel / long), max(1, row.image.height * panel / long))
    }
    let width = max(2 * m + 3 * panel + 2 * g, 2 * m + Canvas.textWidth(heading))
    let labelsTop = m + th + 12
    var y = labelsTop + th + 10
    let tops = sizes.map { size -> Int in
      defer { y += th + ContactSheet.titleGap + size.h + ContactSheet.rowGap }
      return y
    }
    var canvas = Canvas(width: width, height: y - ContactSheet.rowGap + m)
    canvas.text(heading, m, m)
    for (c, label) in ["image", "truth", "prediction"].enumerated() {
      canvas.text(label, m + c * (panel + g) + (panel - Canvas.textWidth(label)) / 2, labelsTop, (90, 90, 90))
    }
    for (row, (top, size)) in zip(rows, zip(tops, sizes)) {
      canvas.text(ContactSheet.fit(row.title, width - 2 * m), m, top)
      for (c, panelPixels) in try panels(of: row).enumerated() {
        let scaled = Canvas.resample(panelPixels, width: row.image.width, height: row.image.height, to: size.w, size.h)
        canvas.draw(rgb: scaled, width: size.w, height: size.h, at: m + c * (panel + g), top + th + ContactSheet.titleGap)
      }
    }
    return try canvas.image()
  }

  /// The input, the truth overlay and the prediction overlay of `row`, each RGB at the image's size.
  func panels(of row: Row) throws -> [[UInt8]] {
    let gray = row.image.grayImage()
    let input = row.image.channels == 3 ? row.image.converted(bitDepth: 8).samples.map { UInt8($0) } : gray.pixels.flatMap { [$0, $0, $0] }
    return [input, try Overlay.render(image: gray, classes: row.truth), try Overlay.render(image: gray, classes: row.prediction)]
  }

  /// `text` shortened in the middle ("...") to fit in `width` pixels.
  static func fit(_ text: String, _ width: Int) -> String {
    let most = max(5, (width + 2) / 12)
    guard text.count > most else { return text }
    let keep = most - 3
    return String(text.prefix(keep - keep / 2)) + "..." + String(text.suffix(keep / 2))
  }
}

// MARK: - From an evaluation

extension ContactSheet {
  /// The sheet of `report`'s worst and best `count` images among `slices` (the images it
  /// evaluated, in its order), predicted again with `predictor` (only those shown).
  public static func make(
    report: EvaluationReport, slices: [LabelledSlice], predictor: TiledPredictor, count: Int = 3
  ) throws -> ContactSheet {
    let (worst, best) = ranked(report, count: count)
    func row(_ i: Int, _ label: String) throws -> Row {
      let e = report.perImage[i], slice = slices[e.index]
      let prediction = try predictor.predict(slice.imageFile)
      return Row(title: String(format: "%@: %@, dice %.4f", label, e.name, e.scores.foregroundDice),
                 image: slice.imageFile, truth: slice.label.map(Int32.init), prediction: prediction.classIndices)
    }
    let rows = try worst.enumerated().map { try row($1, "worst \($0 + 1)") } + best.enumerated().map { try row($1, "best \($0 + 1)") }
    let heading = String(format: "%ld images, mean dice %.4f", report.perImage.count, report.meanDice)
    return ContactSheet(heading: heading, rows: rows)
  }
}
