import Foundation
import SegData
import Testing

// MARK: - The evaluation's contact sheet

@Suite struct ContactSheetCLITests {
  /// A folder set of 8 generated slices and a model trained 2 steps on half of them.
  private func trained() throws -> (root: URL, common: [String], model: URL) {
    let root = try temporaryDirectory()
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model")
    let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "8", "--test-count", "1"])
    #expect(synth.status == 0, "\(synth.output)")
    let common = ["--data-dir", data, "--model-dir", model.path, "--folds", "2", "--fold", "0", "--batch-size", "1"] + tinyModel
    let train = try unet(["train", "--exec-mode", "train", "--max-steps", "2", "--workers", "0"] + common)
    #expect(train.status == 0, "\(train.output)")
    return (root, common, model)
  }

  @Test func evaluateDrawsTheWorstAndBestImagesBesideTheModel() throws {
    let (root, common, model) = try trained()
    defer { try? FileManager.default.removeItem(at: root) }
    let r = try unet(["evaluate", "--output", root.appendingPathComponent("scores.json").path] + common)
    #expect(r.status == 0, "\(r.output)")
    let url = model.appendingPathComponent("contact-sheet.png")
    #expect(r.output.contains(url.path), "\(r.output)")
    let sheet = try ImageFile.read(contentsOf: url)
    // Four validation images: the two worst and the two best, each a row of three 192x192 panels.
    #expect(sheet.channels == 3 && sheet.bitDepth == 8)
    #expect(sheet.width == 2 * 16 + 3 * 192 + 2 * 8 && sheet.height == 16 + 14 + 12 + 14 + 10 + 4 * (14 + 6 + 192 + 18) - 18 + 16,
            "\(sheet.width)x\(sheet.height)")
    // The overlays outline class 1 in its colour at full strength.
    let green: [UInt16] = [60, 180, 75]
    let outlined = stride(from: 0, to: sheet.samples.count, by: 3).contains { Array(sheet.samples[$0..<$0 + 3]) == green }
    #expect(outlined)
    // The rows are titled with the images' names and Dice, as the JSON report has them.
    let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("scores.json"))) as? [String: Any])
    let images = try #require(report["per_image"] as? [[String: Any]])
    #expect(images.count == 4)
    #expect(r.output.contains("worst") && r.output.contains("best"), "\(r.output)")
  }

  @Test func theSheetCanBeNamedOrLeftOut() throws {
    let (root, common, model) = try trained()
    defer { try? FileManager.default.removeItem(at: root) }
    let named = root.appendingPathComponent("sheets/eval.png")
    let r = try unet(["evaluate", "--contact-sheet", named.path] + common)
    #expect(r.status == 0 && FileManager.default.fileExists(atPath: named.path), "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: model.appendingPathComponent("contact-sheet.png").path))
    let none = try unet(["evaluate", "--no-contact-sheet"] + common)
    #expect(none.status == 0 && !none.output.contains("contact-sheet"), "\(none.output)")
    #expect(!FileManager.default.fileExists(atPath: model.appendingPathComponent("contact-sheet.png").path))
  }
}
