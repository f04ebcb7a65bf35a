import Foundation
import SegData
import Testing

// MARK: - unet export and --tensorboard

@Suite(.serialized) struct ExportCLITests {
  /// Trains a tiny model with --tensorboard, exports it in both precisions and layouts, and checks
  /// that the files start as ONNX models do and that bad requests write nothing.
  @Test func trainWithTensorBoardThenExport() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model").path
    let board = root.appendingPathComponent("board")
    let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "5", "--test-count", "1"])
    #expect(synth.status == 0, "\(synth.output)")
    let train = try unet(["train", "--exec-mode", "train_and_evaluate", "--max-steps", "2", "--log-every", "1", "--data-dir", data,
                          "--model-dir", model, "--fold", "0", "--tensorboard", board.path] + tinyModel)
    #expect(train.status == 0, "\(train.output)")
    let events = try FileManager.default.contentsOfDirectory(atPath: board.path)
    #expect(events.filter { $0.hasPrefix("events.out.tfevents.") }.count == 1 && events.contains("curves.png"), "\(events)")

    for extra in [[], ["--precision", "fp16", "--layout", "nhwc", "--softmax"]] {
      let out = root.appendingPathComponent("model\(extra.count).onnx")
      let export = try unet(["export", "--model-dir", model, "--output", out.path] + extra)
      #expect(export.status == 0, "\(export.output)")
      #expect(export.output.contains("tile 32 -> 32"), "\(export.output)")
      // A ModelProto begins with field 1 (ir_version, varint): tag 0x08, then 8.
      let bytes = try Data(contentsOf: out)
      #expect(bytes.prefix(2) == Data([0x08, 0x08]))
    }

    let missing = try unet(["export", "--model-dir", root.appendingPathComponent("none").path, "--output", root.appendingPathComponent("x.onnx").path])
    #expect(missing.status != 0 && missing.output.contains("no checkpoint"), "\(missing.output)")
    let badPrecision = try unet(["export", "--model-dir", model, "--output", root.appendingPathComponent("y.onnx").path, "--precision", "bf16"])
    #expect(badPrecision.status != 0 && badPrecision.output.contains("--precision bf16"), "\(badPrecision.output)")
    let oldOpset = try unet(["export", "--model-dir", model, "--output", root.appendingPathComponent("z.onnx").path, "--opset", "13"])
    #expect(oldOpset.status != 0 && oldOpset.output.contains("opset 13"), "\(oldOpset.output)")
    for name in ["x.onnx", "y.onnx", "z.onnx"] {
      #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path), "\(name) was written")
    }
  }
}
