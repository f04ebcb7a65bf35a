import Foundation
import SegData
import SegNN

// MARK: - TensorBoard

/// Writes a run's curves and pictures as TensorBoard events (`unet train --tensorboard DIR`): on each
/// logging step the mean training losses, the learning rate, the throughput and, for a loss-scaled
/// run, the loss scale and skipped steps; at each evaluation its scores (soft Dice, cross-entropy,
/// mean Dice and IoU, and Dice and IoU of every class) and, when the run trains, one picture of the
/// first validation image: the input, the truth overlay and the prediction overlay side by side. At
/// the run's end it draws the training and validation curves into `curves.png` beside the events.
public final class TensorBoardCallback: TrainingCallback {
  /// The directory the event file goes into.
  public let directory: URL
  /// The event file's writer, made when the run starts.
  public private(set) var writer: TensorBoardEventWriter?
  private var validation: [LabelledSlice] = []
  private var window = SlidingWindow()
  private var batchSize = 1
  // The trained model, kept from the loop's start to the run's end so that the run's last
  // evaluation, after the loop, gets its picture too.
  private var model: UNet?
  private var curves = TensorBoardCurves()

  /// A callback writing into `directory` (created when the run starts).
  public init(directory: URL) { self.directory = directory }

  public func runStarted(_ run: RunContext) throws {
    writer = try TensorBoardEventWriter(directory: directory)
    validation = run.validation
    window = run.settings.window
    batchSize = run.settings.training.batchSize
  }

  public func trainingStarted(_ loop: TrainingLoop) throws { model = loop.model }

  // MARK: - Training

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard let m = event.window, let writer else { return }
    var values: [(tag: String, value: Double)] = [
      ("train/cross_entropy_loss", m.crossEntropy), ("train/dice_loss", m.dice), ("train/total_loss", m.total),
      ("train/learning_rate", loop.optimizer.learningRate), ("train/images_per_second", event.imagesPerSecond),
    ]
    if let scaler = event.lossScaler {
      values += [("train/loss_scale", scaler.scale), ("train/skipped_steps", Double(scaler.skippedSteps))]
    }
    try writer.scalars(values, step: event.step)
    curves.trainingLoss.append((event.step, m.crossEntropy + m.dice))
  }

  // MARK: - Evaluation

  public func evaluated(_ report: EvaluationReport, at step: Int) throws {
    guard let writer else { return }
    var values: [(tag: String, value: Double)] = [
      ("eval/soft_dice", report.softDice), ("eval/cross_entropy_loss", report.crossEntropy),
      ("eval/mean_dice", report.meanDice), ("eval/mean_iou", report.meanIoU),
    ]
    for (c, (dice, iou)) in zip(report.scores.perClassDice, report.scores.perClassIoU).enumerated() {
      values += [("eval/dice/class_\(c)", dice), ("eval/iou/class_\(c)", iou)]
    }
    try writer.scalars(values, step: step)
    curves.validationLoss.append((step, report.crossEntropy + report.diceLoss))
    curves.validationDice.append((step, report.meanDice))
    if let model, let slice = validation.first {
      let (png, width, height) = try TensorBoardCallback.picture(of: slice, model: model, batchSize: batchSize, window: window)
      try writer.image("eval/prediction", png: png, width: width, height: height, channels: 3, step: step)
    }
  }

  /// The slice's image, its truth overlay and `model`'s prediction overlay side by side (RGB PNG,
  /// 8 white pixels apart): its bytes and size.
  static func picture(
    of slice: LabelledSlice, model: UNet, batchSize: Int, window: SlidingWindow
  ) throws -> (png: Data, width: Int, height: Int) {
    let predictor = try TiledPredictor(model: model, batchSize: batchSize, window: window)
    let prediction = try predictor.predict(slice.imageFile)
    let gray = slice.imageFile.grayImage()
    let panels = [
      gray.pixels.flatMap { [$0, $0, $0] },
      try Overlay.render(image: gray, classes: slice.label.map(Int32.init)),
      try Overlay.render(image: gray, classes: prediction.classIndices),
    ]
    let (w, h, gap) = (slice.width, slice.height, 8)
    var canvas = Canvas(width: 3 * w + 2 * gap, height: h)
    for (p, panel) in panels.enumerated() { canvas.draw(rgb: panel, width: w, height: h, at: p * (w + gap), 0) }
    return (try PNG.encode(canvas.image()), canvas.width, h)
  }

  /// Draws `curves.png` into the directory when the run trained or evaluated.
  public func runEnded() throws {
    if !curves.isEmpty { try PNG.write(curves.image(), to: directory.appendingPathComponent("curves.png")) }
    (writer, model, curves) = (nil, nil, TensorBoardCurves())
  }
}
