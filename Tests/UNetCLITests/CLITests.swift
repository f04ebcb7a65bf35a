import Foundation
import SegData
import Testing

// MARK: - Running the tool

/// The `unet` binary built beside the test bundle.
let unetBinary: URL = {
  var dir = Bundle.main.bundleURL
  for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") { dir = bundle.bundleURL.deletingLastPathComponent() }
  return dir.appendingPathComponent("unet")
}()

/// Runs `unet` with `arguments`; returns the exit code and stdout+stderr.
func unet(_ arguments: [String]) throws -> (status: Int32, output: String) {
  let process = Process()
  process.executableURL = unetBinary
  process.arguments = arguments
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  try process.run()
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("unet-cli-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// A tiny model that trains in a moment in a debug build.
let tinyModel = ["--padding", "same", "--depth", "2", "--base-filters", "4", "--input-size", "32"]

// MARK: - End to end

@Suite(.serialized) struct CLIEndToEndTests {
  @Test func trainResumeEvaluatePredict() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model").path
    let log = root.appendingPathComponent("log.json").path

    let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "5", "--test-count", "2"])
    #expect(synth.status == 0, "\(synth.output)")

    let common = ["--data-dir", data, "--model-dir", model, "--batch-size", "2", "--fold", "0"] + tinyModel
    let train = try unet(["train", "--exec-mode", "train", "--max-steps", "3", "--log-every", "1", "--log_dir", log] + common)
    #expect(train.status == 0, "\(train.output)")
    #expect(train.output.contains("step 3: train_ce_loss"))
    let checkpoint = root.appendingPathComponent("model/checkpoint.safetensors")
    #expect(FileManager.default.fileExists(atPath: checkpoint.path))

    let resumed = try unet(["train", "--exec_mode", "train", "--max-steps", "5", "--log-every", "1", "--resume-training"] + common)
    #expect(resumed.status == 0, "\(resumed.output)")
    #expect(resumed.output.contains("step 3)") && resumed.output.contains("step 5: train_ce_loss") && !resumed.output.contains("step 1: "))

    let report = root.appendingPathComponent("eval.json")
    let evaluate = try unet(["evaluate", "--data-dir", data, "--model-dir", model, "--fold", "0", "--overlap", "0.5", "--blending", "gaussian", "--output", report.path])
    #expect(evaluate.status == 0, "\(evaluate.output)")
    #expect(evaluate.output.contains("eval_dice_score"))
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
    #expect(json?["mean_dice"] is Double && json?["soft_dice"] is Double && (json?["per_image"] as? [Any])?.count == 1)

    let predict = try unet(["predict", "--data-dir", data, "--model-dir", model])
    #expect(predict.status == 0, "\(predict.output)")
    let masks = try TIFF.read(contentsOf: root.appendingPathComponent("model/predictions/test-masks.tif"))
    #expect(masks.count == 2)
    #expect(masks.allSatisfy { $0.width == 48 && $0.height == 48 && Set($0.pixels).isSubset(of: [0, 255]) })
    let elsewhere = root.appendingPathComponent("elsewhere")
    let redirected = try unet(["predict", "--data-dir", data, "--model-dir", model, "--output", elsewhere.path])
    #expect(redirected.status == 0, "\(redirected.output)")
    #expect(FileManager.default.fileExists(atPath: elsewhere.appendingPathComponent("test-masks.tif").path))

    let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
    #expect(lines.count >= 4 && lines.allSatisfy { $0.hasPrefix("DLLL {") })
    #expect(lines.contains { $0.contains("\"train_total_loss\"") })
  }
}

// MARK: - Bad input

@Suite(.serialized) struct CLIBadInputTests {
  @Test func missingDataDirectoryIsNamed() throws {
    let r = try unet(["train", "--data-dir", "/nonexistent/isbi", "--max-steps", "1"] + tinyModel)
    #expect(r.status != 0)
    #expect(r.output.contains("/nonexistent/isbi"), "\(r.output)")
  }

  @Test func unknownFlagValueIsNamed() throws {
    let r = try unet(["train", "--padding", "diagonal"])
    #expect(r.status != 0)
    #expect(r.output.contains("--padding"), "\(r.output)")
  }

  @Test func invalidInputSizeNamesNearestSizes() throws {
    let r = try unet(["train", "--input-size", "570", "--padding", "valid"])
    #expect(r.status != 0)
    #expect(r.output.contains("--input-size") && r.output.contains("572"), "\(r.output)")
  }

  @Test func labelsWithTooFewPagesAreNamed() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    #expect(try unet(["data", "synth", "--output", root.path, "--size", "32", "--train-count", "3", "--test-count", "1"]).status == 0)
    let labels = root.appendingPathComponent("train-labels.tif")
    let pages = try TIFF.read(contentsOf: labels)
    try TIFF.write(Array(pages.prefix(2)), to: labels)
    let r = try unet(["train", "--data-dir", root.path, "--max-steps", "1"] + tinyModel)
    #expect(r.status != 0)
    #expect(r.output.contains("train-labels.tif"), "\(r.output)")
  }

  @Test func nonBinaryLabelsAreNamed() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    #expect(try unet(["data", "synth", "--output", root.path, "--size", "32", "--train-count", "2", "--test-count", "1"]).status == 0)
    let labels = root.appendingPathComponent("train-labels.tif")
    var pages = try TIFF.read(contentsOf: labels)
    var pixels = pages[1].pixels
    pixels[5] = 128
    pages[1] = GrayImage(width: pages[1].width, height: pages[1].height, pixels: pixels)
    try TIFF.write(pages, to: labels)
    let r = try unet(["train", "--data-dir", root.path, "--max-steps", "1"] + tinyModel)
    #expect(r.status != 0)
    #expect(r.output.contains("train-labels.tif") && r.output.contains("128"), "\(r.output)")
  }

  @Test func checkpointsAreNeverOverwrittenOrMisread() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model").path
    #expect(try unet(["data", "synth", "--output", data, "--size", "32", "--train-count", "3", "--test-count", "1"]).status == 0)
    let common = ["--data-dir", data, "--model-dir", model, "--batch-size", "1", "--exec-mode", "train"]
    #expect(try unet(["train", "--max-steps", "1"] + common + tinyModel).status == 0)
    let checkpoint = root.appendingPathComponent("model/checkpoint.safetensors")
    let original = try Data(contentsOf: checkpoint)

    // Training again into the same directory without --resume-training is refused.
    let again = try unet(["train", "--max-steps", "1"] + common + tinyModel)
    #expect(again.status != 0 && again.output.contains("--resume-training"), "\(again.output)")
    // Resuming with another model is refused.
    let other = try unet(["train", "--max-steps", "2", "--resume-training"] + common + ["--padding", "same", "--depth", "2", "--base-filters", "8", "--input-size", "32"])
    #expect(other.status != 0 && other.output.contains("checkpoint"), "\(other.output)")
    #expect(try Data(contentsOf: checkpoint) == original)

    // A truncated checkpoint is named and left as it is.
    let truncated = original.prefix(original.count / 2)
    try truncated.write(to: checkpoint)
    let evaluate = try unet(["evaluate", "--data-dir", data, "--model-dir", model])
    #expect(evaluate.status != 0 && evaluate.output.contains("checkpoint.safetensors"), "\(evaluate.output)")
    #expect(try Data(contentsOf: checkpoint) == truncated)
  }
}

// MARK: - Folder data sets and image files

@Suite(.serialized) struct CLIFolderTests {
  @Test func trainOnAFolderThenPredictFilesWithOverlays() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data")
    for sub in ["images", "masks", "test"] {
      try FileManager.default.createDirectory(at: data.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    for (i, s) in SyntheticEM.generate(count: 4, size: 40, seed: 3).enumerated() {
      try ImageFile.write(Image(width: 40, height: 40, channels: 1, bitDepth: 8, samples: s.image.map(UInt16.init)), to: data.appendingPathComponent("images/s\(i).png"))
      try ImageFile.write(Image(width: 40, height: 40, channels: 1, bitDepth: 8, samples: s.binaryMask.map(UInt16.init)), to: data.appendingPathComponent("masks/s\(i).tif"))
    }
    // An image larger than any tile, of an odd size.
    let big = SyntheticEM.slice(size: 70, seed: 3, index: 9)
    let odd = try Image(width: 70, height: 53, channels: 1, bitDepth: 8, samples: big.image.prefix(70 * 53).map(UInt16.init))
    try ImageFile.write(odd, to: data.appendingPathComponent("test/odd.png"))

    let model = root.appendingPathComponent("model").path
    let train = try unet(["train", "--data-dir", data.path, "--model-dir", model, "--max-steps", "2", "--fold", "0", "--folds", "4", "--augment"] + tinyModel)
    #expect(train.status == 0, "\(train.output)")
    #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("model/checkpoint.safetensors").path))

    let predictTest = try unet(["predict", "--data-dir", data.path, "--model-dir", model])
    #expect(predictTest.status == 0, "\(predictTest.output)")
    let mask = try ImageFile.read(contentsOf: root.appendingPathComponent("model/predictions/odd-mask.png"))
    #expect(mask.width == 70 && mask.height == 53 && Set(mask.samples).isSubset(of: [0, 255]))

    let out = root.appendingPathComponent("out")
    let files = try unet(["predict", "--model-dir", model, "--input", data.appendingPathComponent("test").path,
                          data.appendingPathComponent("images/s1.png").path, "--output", out.path, "--probabilities", "--tta"])
    #expect(files.status == 0, "\(files.output)")
    let overlay = try ImageFile.read(contentsOf: out.appendingPathComponent("odd-overlay.png"))
    #expect(overlay.channels == 3 && overlay.width == 70 && overlay.height == 53)
    let probabilities = try TIFF.readImages(contentsOf: out.appendingPathComponent("s1-probabilities.tif"))
    #expect(probabilities.count == 2 && probabilities[0].bitDepth == 16)
  }

  @Test func missingInputIsNamed() throws {
    let r = try unet(["predict", "--model-dir", "/nonexistent/model", "--input", "/nonexistent/a.png", "--output", "/tmp/x"])
    #expect(r.status != 0)
    #expect(r.output.contains("/nonexistent/"), "\(r.output)")
  }
}
