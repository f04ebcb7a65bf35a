import Foundation
import SegData

// MARK: - Curves

/// A picture of a run's curves, `curves.png` beside the event file: the training and validation
/// losses (cross-entropy + Dice loss, as `eval_total_loss`) against the step on the left, the validation Dice on the right, with labelled axes and
/// ticks, drawn into an RGB raster and written with our PNG writer.
struct TensorBoardCurves {
  /// (step, value) points of one curve, in step order.
  typealias Points = [(step: Int, value: Double)]

  var trainingLoss: Points = []
  var validationLoss: Points = []
  var validationDice: Points = []

  static let trainColour: Overlay.Colour = (31, 119, 180)
  static let validationColour: Overlay.Colour = (230, 120, 20)

  /// Whether there is anything to draw.
  var isEmpty: Bool { trainingLoss.isEmpty && validationLoss.isEmpty && validationDice.isEmpty }

  /// The picture as an 8-bit RGB image.
  func image() throws -> Image {
    var canvas = Canvas(width: 2 * Canvas.panelWidth, height: Canvas.panelHeight)
    canvas.panel(at: 0, yLabel: "loss", curves: [(trainingLoss, Self.trainColour, "train"), (validationLoss, Self.validationColour, "val")])
    canvas.panel(at: Canvas.panelWidth, yLabel: "dice", curves: [(validationDice, Self.validationColour, "val")], range: (0, 1))
    return try canvas.image()
  }
}

// MARK: - Panels

extension Canvas {
  static let panelWidth = 480, panelHeight = 340
  /// Plot area inside a panel: left, top, right, bottom margins.
  static let margins = (left: 80, top: 40, right: 20, bottom: 50)

  /// A plot at horizontal offset `x0`: axes, ticks labelled with steps and values, `yLabel`, "step",
  /// each curve as a line (a dot where it has one point) and a legend; `range` fixes the y axis.
  mutating func panel(
    at x0: Int, yLabel: String, curves: [(points: TensorBoardCurves.Points, colour: Overlay.Colour, name: String)],
    range: (Double, Double)? = nil
  ) {
    let m = Canvas.margins
    let (left, top) = (x0 + m.left, m.top)
    let (right, bottom) = (x0 + Canvas.panelWidth - m.right, Canvas.panelHeight - m.bottom)
    let all = curves.flatMap(\.points)
    let maxStep = max(all.map(\.step).max() ?? 1, 1)
    var (lo, hi) = range ?? (all.map(\.value).min() ?? 0, all.map(\.value).max() ?? 1)
    if hi - lo < 1e-9 { (lo, hi) = (lo - 0.5, hi + 0.5) }
    if range == nil { (lo, hi) = (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)) }
    func px(_ step: Int) -> Int { left + Int((Double(step) / Double(maxStep) * Double(right - left)).rounded()) }
    func py(_ v: Double) -> Int { bottom - Int(((v - lo) / (hi - lo) * Double(bottom - top)).rounded()) }

    let grey: Overlay.Colour = (200, 200, 200), black: Overlay.Colour = (0, 0, 0)
    for i in 0...4 {
      let v = lo + (hi - lo) * Double(i) / 4
      line(left, py(v), right, py(v), grey, thick: false)
      let label = Canvas.format(v, spread: hi - lo)
      text(label, left - 8 - Canvas.textWidth(label), py(v) - 7)
      let s = maxStep * i / 4
      line(px(s), bottom, px(s), bottom + 5, black, thick: false)
      text(String(s), px(s) - Canvas.textWidth(String(s)) / 2, bottom + 10)
    }
    line(left, top, left, bottom, black, thick: false)
    line(left, bottom, right, bottom, black, thick: false)
    text("step", left + (right - left) / 4 - Canvas.textWidth("step") / 2, bottom + 30)
    text(yLabel, left - Canvas.textWidth(yLabel) / 2, top - 32)
    for (n, curve) in curves.enumerated() {
      let points = curve.points.map { (px($0.step), py($0.value)) }
      for (a, b) in zip(points, points.dropFirst()) { line(a.0, a.1, b.0, b.1, curve.colour) }
      for p in points where points.count == 1 {
        for dx in -2...2 { for dy in -2...2 { set(p.0 + dx, p.1 + dy, curve.colour) } }
      }
      // The legend sits under the axis, right of "step", where no curve can hide it.
      let lx = right - 210 + 115 * n, ly = bottom + 30
      line(lx, ly + 6, lx + 25, ly + 6, curve.colour)
      text(curve.name, lx + 32, ly)
    }
  }

  /// A tick value with as many decimals as the axis's spread needs.
  static func format(_ v: Double, spread: Double) -> String {
    // One decimal more than the tick spacing's first significant digit needs, so 0.25 is not 0.2.
    let decimals = max(0, min(5, Int((-log10(max(spread, 1e-9) / 4)).rounded(.up)) + 1))
    return String(format: "%.\(decimals)f", v)
  }
}
