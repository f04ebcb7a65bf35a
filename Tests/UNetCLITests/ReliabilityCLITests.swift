import Foundation
import SegData
import Testing

// MARK: - Helpers

/// A small ISBI data set and a model folder trained 2 steps into it, under a fresh folder.
private func trainedModel() throws -> (root: URL, data: String, model: URL, common: [String]) {
  let root = try temporaryDirectory()
  let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model")
  let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "3", "--test-count", "1"])
  #expect(synth.status == 0, "\(synth.output)")
  let common = ["--data-dir", data, "--model-dir", model.path, "--batch-size", "1", "--log-every", "1"] + tinyModel
  let train = try unet(["train", "--exec-mode", "train", "--max-steps", "2"] + common)
  #expect(train.status == 0, "\(train.output)")
  return (root, data, model, common)
}

/// Rewrites metadata values of a safetensors file in place (the header is re-serialised).
private func rewriteMetadata(_ url: URL, _ values: [String: String]) throws {
  let data = try Data(contentsOf: url)
  let length = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
  var header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
  var metadata = try #require(header["__metadata__"] as? [String: String])
  for (k, v) in values { metadata[k] = v }
  header["__metadata__"] = metadata
  var json = try JSONSerialization.data(withJSONObject: header)
  while json.count % 8 != 0 { json.append(0x20) }
  var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Data($0) }
  out.append(json)
  out.append(data.subdata(in: (8 + length)..<data.count))
  try out.write(to: url)
}

// MARK: - A diverging run keeps the good model

@Suite(.serialized) struct DivergenceCLITests {
  @Test func divergingResumeStopsWithTheStepAndKeepsTheGoodCheckpoint() throws {
    let (root, _, model, common) = try trainedModel()
    defer { try? FileManager.default.removeItem(at: root) }
    let checkpoint = model.appendingPathComponent("checkpoint.safetensors")
    let before = try Data(contentsOf: checkpoint)
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "8", "--resume-training", "--learning-rate", "1e6"] + common)
    #expect(r.status != 0, "\(r.output)")
    #expect(r.output.contains("--learning-rate") && r.output.contains("diverged") && r.output.contains("at step")
      && r.output.contains("lower"), "\(r.output)")
    #expect(try Data(contentsOf: checkpoint) == before)
  }

  @Test func divergingFreshRunWritesNoCheckpoint() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model")
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "6", "--learning-rate", "1e6", "--model-dir", model.path] + tinyModel)
    #expect(r.status != 0 && r.output.contains("diverged"), "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: model.appendingPathComponent("checkpoint.safetensors").path))
  }

  @Test(arguments: [["--learning-rate", "inf"], ["--learning-rate", "-1"], ["--weight-decay", "nan"], ["--weight-decay", "inf"],
                    ["--weight-decay", "-0.1"]])
  func nonFiniteOrNegativeRatesAreRefused(_ flag: [String]) throws {
    let r = try unet(["train", "--max-steps", "1"] + flag + tinyModel)
    #expect(r.status != 0 && r.output.contains(flag[0]) && r.output.contains("finite"), "\(r.output)")
  }
}

// MARK: - What cannot fit is refused before it starts

@Suite struct LimitsCLITests {
  @Test func aBatchThatCannotFitIsRefusedWithTheLargestThatFits() throws {
    let r = try unet(["train", "--batch-size", "100000000", "--max-steps", "1"] + tinyModel)
    #expect(r.status == 1, "\(r.output)")
    #expect(r.output.contains("--batch-size 100000000") && r.output.contains("largest batch that fits") && r.output.contains("available"), "\(r.output)")
  }

  @Test func hugeSynthSizesAndWorkerCountsNameTheirFlags() throws {
    let synth = try unet(["data", "synth", "--output", "/tmp/unet-never-written", "--size", "100000"])
    #expect(synth.status != 0 && synth.output.contains("--size"), "\(synth.output)")
    #expect(!FileManager.default.fileExists(atPath: "/tmp/unet-never-written"))
    let workers = try unet(["train", "--workers", "100000", "--max-steps", "1"] + tinyModel)
    #expect(workers.status != 0 && workers.output.contains("--workers"), "\(workers.output)")
  }

  @Test(arguments: ["--batch-size", "--max-steps", "--workers", "--folds"])
  func negativeNumbersReachTheRangeCheck(_ flag: String) throws {
    let r = try unet(["train", flag, "-1"] + tinyModel)
    #expect(r.status != 0 && r.output.contains(flag) && !r.output.contains("Missing value"), "\(r.output)")
  }
}

// MARK: - The model folder is checked before training

@Suite struct ModelDirectoryCLITests {
  func refused(_ modelDir: String, root: URL) throws {
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "3", "--log-every", "1", "--model-dir", modelDir] + tinyModel)
    #expect(r.status != 0, "\(r.output)")
    #expect(r.output.contains("--model-dir") && !r.output.contains("step 1:") && !r.output.contains("NSCocoaErrorDomain"), "\(r.output)")
  }

  @Test func aFileOrAPathBelowAFileIsRefusedBeforeTheFirstStep() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let file = root.appendingPathComponent("plain-file")
    try Data("x".utf8).write(to: file)
    try refused(file.path, root: root)
    try refused(file.appendingPathComponent("below").path, root: root)
  }

  @Test(.enabled(if: geteuid() != 0, "root ignores directory permissions"))
  func aReadOnlyFolderIsRefusedBeforeTheFirstStep() throws {
    let root = try temporaryDirectory()
    defer {
      try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root.path)
      try? FileManager.default.removeItem(at: root)
    }
    try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: root.path)
    try refused(root.path, root: root)
  }

  @Test func aLogPathThatIsAFolderIsSaidInWords() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let r = try unet(["train", "--max-steps", "1", "--log-dir", root.path] + tinyModel)
    #expect(r.status != 0 && r.output.contains("is a folder") && !r.output.contains("NSCocoaErrorDomain"), "\(r.output)")
  }

  @Test func resumingWithoutACheckpointSaysSo() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "1", "--resume-training", "--model-dir", root.path] + tinyModel)
    #expect(r.status == 0 && r.output.contains("nothing to resume"), "\(r.output)")
  }

  @Test func staleTemporariesOfDeadRunsAreRemoved() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    // The id of a process that has ended.
    let done = Process()
    done.executableURL = URL(fileURLWithPath: "/bin/true")
    try done.run()
    done.waitUntilExit()
    let stale = root.appendingPathComponent(".checkpoint.safetensors.tmp-\(done.processIdentifier)-12345")
    try Data("partial".utf8).write(to: stale)
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "1", "--model-dir", root.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: stale.path))
  }

  @Test func stepsBeyond32BitsArePrintedWhole() throws {
    let (root, _, model, common) = try trainedModel()
    defer { try? FileManager.default.removeItem(at: root) }
    let big = 1 << 31 + 3
    try rewriteMetadata(model.appendingPathComponent("checkpoint.safetensors"), ["step": "\(big)", "adam.step": "\(big)"])
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "\(big + 1)", "--resume-training"] + common)
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.contains("step \(big + 1): train_ce_loss") && !r.output.contains("step -"), "\(r.output)")
  }
}

// MARK: - Predictions never replace what the user made

@Suite struct PredictionFilesCLITests {
  @Test func outputIntoTheInputFolderKeepsExistingFilesUnlessOverwrite() throws {
    let (root, _, model, _) = try trainedModel()
    defer { try? FileManager.default.removeItem(at: root) }
    let folder = root.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let s = SyntheticEM.slice(size: 40, seed: 1, index: 0)
    try ImageFile.write(Image(width: 40, height: 40, channels: 1, bitDepth: 8, samples: s.image.map(UInt16.init)), to: folder.appendingPathComponent("s0.png"))
    let mine = folder.appendingPathComponent("s0-mask.png")
    try Data("the user's own file".utf8).write(to: mine)
    let args = ["predict", "--model-dir", model.path, "--input", folder.appendingPathComponent("s0.png").path, "--output", folder.path] + tinyModel
    let r = try unet(args)
    #expect(r.status != 0 && r.output.contains("--overwrite") && r.output.contains("s0-mask.png"), "\(r.output)")
    #expect(try Data(contentsOf: mine) == Data("the user's own file".utf8))
    let again = try unet(args + ["--overwrite"])
    #expect(again.status == 0, "\(again.output)")
    #expect(try ImageFile.read(contentsOf: mine).width == 40)
  }

  @Test func inputsSharingAStemWriteDistinctFilesAndTheSummaryCountsThem() throws {
    let (root, _, model, _) = try trainedModel()
    defer { try? FileManager.default.removeItem(at: root) }
    let folder = root.appendingPathComponent("in"), out = root.appendingPathComponent("out")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let s = SyntheticEM.slice(size: 40, seed: 1, index: 0)
    let image = try Image(width: 40, height: 40, channels: 1, bitDepth: 8, samples: s.image.map(UInt16.init))
    try ImageFile.write(image, to: folder.appendingPathComponent("a.png"))
    try TIFF.write([image], to: folder.appendingPathComponent("a.tif"))
    let r = try unet(["predict", "--model-dir", model.path, "--input", folder.path, "--output", out.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    let written = try FileManager.default.contentsOfDirectory(atPath: out.path)
    #expect(Set(written) == ["a.png-mask.png", "a.png-overlay.png", "a.tif-mask.png", "a.tif-overlay.png"])
    #expect(r.output.contains("wrote \(written.count) files"), "\(r.output)")
  }
}

// MARK: - Saving while training, and stopping cleanly

@Suite struct StoppingCLITests {
  @Test func checkpointEverySavesDuringTraining() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model")
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "5", "--checkpoint-every", "1", "--learning-rate", "1e6",
                      "--model-dir", model.path] + tinyModel)
    // The loss is NaN from step 2: the checkpoint of step 1 is the one kept.
    #expect(r.status != 0 && r.output.contains("diverged"), "\(r.output)")
    #expect(FileManager.default.fileExists(atPath: model.appendingPathComponent("checkpoint.safetensors").path), "\(r.output)")
    let resumed = try unet(["train", "--exec-mode", "train", "--max-steps", "5", "--resume-training", "--model-dir", model.path] + tinyModel)
    // The saved model is finite, though blown up by the rate: it loads, at the step it was saved.
    #expect(resumed.output.contains("loaded") && resumed.output.contains("(step 1)"), "\(resumed.output)")
  }

  @Test func sigintFinishesTheStepSavesAndExitsWith130() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model"), log = root.appendingPathComponent("out.txt")
    FileManager.default.createFile(atPath: log.path, contents: nil)
    let process = Process()
    process.executableURL = unetBinary
    process.arguments = ["train", "--exec-mode", "train", "--max-steps", "100000", "--log-every", "1", "--model-dir", model.path] + tinyModel
    let handle = try FileHandle(forWritingTo: log)
    (process.standardOutput, process.standardError) = (handle, handle)
    try process.run()
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline, !((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("step 2:") { usleep(50_000) }
    process.interrupt()
    process.waitUntilExit()
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    #expect(process.terminationStatus == 130, "\(output)")
    #expect(output.contains("stopped by SIGINT") && output.contains("--resume-training"), "\(output)")
    let resumed = try unet(["train", "--exec-mode", "train", "--max-steps", "3", "--resume-training", "--model-dir", model.path] + tinyModel)
    #expect(resumed.status == 0 && resumed.output.contains("loaded"), "\(resumed.output)")
  }
}
