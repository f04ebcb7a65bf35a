import Foundation
import SegCore
import SegData
import SegNN
import SegTestSupport
@testable import SegTrain
import Testing

// MARK: - TensorBoard's own reader

/// Whether the tests' Python has the tensorboard package.
let pythonHasTensorBoard = TestPython.run(["-c", "from tensorboard.backend.event_processing import event_accumulator"]).status == 0

/// Reads a directory with TensorBoard's EventAccumulator and prints, as JSON, every scalar tag's
/// steps and every image tag's steps and sizes.
let tensorBoardReadScript = """
  import json, sys
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
  acc.Reload()
  tags = acc.Tags()
  out = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
         "images": {t: [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(t)] for t in tags["images"]}}
  print(json.dumps(out))
  """

@Suite struct TensorBoardTests {
  @Test func crc32cMatchesTheStandardCheckValue() {
    // CRC-32C's check value (RFC 3720's test of "123456789").
    #expect(crc32c(Data("123456789".utf8)) == 0xE306_9283)
  }

  @Test(.enabled(if: pythonHasTensorBoard, "needs Python with tensorboard: run `bash scripts/setup.sh --tests`"))
  func aShortRunIsReadByTensorBoard() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    var s = LossScaleCheckpointTests.settings(dir, steps: 4, precision: .fp16)
    (s.mode, s.evaluateEvery, s.syntheticSlices, s.fold, s.folds) = (.trainAndEvaluate, 2, 4, 0, 2)
    let boardDir = dir.appendingPathComponent("board")
    try Runner(
      settings: s, backend: ReferenceBackend.shared, precision: LossScaleCheckpointTests.policy(s), say: { _ in },
      callbacks: [TensorBoardCallback(directory: boardDir)]
    ).run()
    let files = try FileManager.default.contentsOfDirectory(atPath: boardDir.path)
    #expect(files.filter { $0.hasPrefix("events.out.tfevents.") }.count == 1 && files.count == 2, "\(files)")
    // The curves: two panels of 480 x 340, with the training curve's colour in the left one.
    let curves = try PNG.read(contentsOf: boardDir.appendingPathComponent("curves.png"))
    #expect(curves.width == 960 && curves.height == 340 && curves.channels == 3)
    let blue = TensorBoardCurves.trainColour
    let wanted = [UInt16(blue.red), UInt16(blue.green), UInt16(blue.blue)]
    let leftPanel = (0..<340).flatMap { y in (0..<480).map { x in (x, y) } }
    #expect(leftPanel.contains { x, y in (0..<3).map { curves[x, y, $0] } == wanted })

    let run = TestPython.run(["-c", tensorBoardReadScript, boardDir.path], mergingErrors: true)
    try #require(run.status == 0, "\(String(decoding: run.output, as: UTF8.self))")
    struct Read: Decodable {
      let scalars: [String: [[Double]]]
      let images: [String: [[Int]]]
    }
    let read = try JSONDecoder().decode(Read.self, from: run.output)
    let training = ["cross_entropy_loss", "dice_loss", "total_loss", "learning_rate", "images_per_second", "loss_scale", "skipped_steps"]
    let evaluation = ["soft_dice", "cross_entropy_loss", "mean_dice", "mean_iou", "dice/class_0", "dice/class_1", "iou/class_0", "iou/class_1"]
    #expect(Set(read.scalars.keys) == Set(training.map { "train/" + $0 } + evaluation.map { "eval/" + $0 }))
    for tag in training {
      #expect(read.scalars["train/" + tag]?.map { Int($0[0]) } == [1, 2, 3, 4], "train/\(tag)")
    }
    for tag in evaluation {
      #expect(read.scalars["eval/" + tag]?.map { Int($0[0]) } == [2, 4], "eval/\(tag)")
    }
    #expect(read.scalars["train/learning_rate"]?.first?[1] == Double(Float(s.training.learningRate)))
    #expect(read.scalars["train/loss_scale"]?.first?[1] == 32768)
    // One picture per evaluation: three 16-pixel panels and two 8-pixel gaps.
    let pictures = try #require(read.images["eval/prediction"])
    #expect(pictures.map { $0[0] } == [2, 4])
    #expect(pictures.allSatisfy { $0[1] == 3 * 16 + 16 && $0[2] == 16 && $0[3] > 0 })
  }
}
