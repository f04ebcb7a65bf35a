import Foundation
import Testing

// MARK: - --precision and --amp

@Suite(.serialized) struct PrecisionCLITests {
  @Test func conflictingAndUnknownPrecisionsNameTheFlags() throws {
    for command in [["train"], ["evaluate"], ["predict"], ["benchmark"]] {
      let both = try unet(command + ["--amp", "--precision", "bf16"] + tinyModel)
      #expect(both.status != 0 && both.output.contains("--amp") && both.output.contains("--precision bf16"), "\(command): \(both.output)")
      let unknown = try unet(command + ["--precision", "fp64"] + tinyModel)
      #expect(unknown.status != 0 && unknown.output.contains("--precision"), "\(command): \(unknown.output)")
    }
    let help = try unet(["train", "--help"])
    #expect(help.output.contains("--precision") && help.output.contains("TF32"), "\(help.output)")
  }

  @Test func theCPUBenchmarkReportsTheRequestedAndTheComputedPrecision() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let output = root.appendingPathComponent("result.json")
    let r = try unet(["benchmark", "--mode", "train", "--amp", "--warmup-steps", "1", "--max-steps", "2", "--output", output.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.components(separatedBy: "no half-precision convolutions").count == 2, "said once: \(r.output)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any])
    let config = try #require(json["config"] as? [String: Any])
    #expect(config["precision"] as? String == "fp16" && config["compute_precision"] as? String == "fp32", "\(config)")
    #expect(config["loss_scaling"] as? Bool == true && config["skipped_steps"] as? Int == 0, "\(config)")

    let same = try unet(["benchmark", "--mode", "predict", "--precision", "fp16", "--amp", "--warmup-steps", "1", "--max-steps", "2",
                         "--output", output.path] + tinyModel)
    #expect(same.status == 0, "--amp with --precision fp16 agree: \(same.output)")
    let predict = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any])
    #expect((predict["config"] as? [String: Any])?["loss_scaling"] as? Bool == false)
  }

  @Test func anAMPRunLogsTheScaleAndEvaluatesInHalfPrecisionOnTheReference() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model").path, log = root.appendingPathComponent("log.json").path
    let data = root.appendingPathComponent("data").path
    let synth = try unet(["data", "synth", "--output", data, "--size", "24", "--train-count", "5", "--test-count", "1"])
    #expect(synth.status == 0, "\(synth.output)")
    let tiny = ["--data-dir", data, "--padding", "same", "--depth", "1", "--base-filters", "2", "--input-size", "16", "--batch-size", "1",
                "--fold", "0"]
    // The CPU computes fp16 in fp32 with loss scaling.
    let cpu = try unet(["train", "--exec-mode", "train", "--amp", "--max-steps", "2", "--log-every", "1", "--log_dir", log,
                        "--model-dir", model] + tiny)
    #expect(cpu.status == 0, "\(cpu.output)")
    #expect(cpu.output.contains("step 2: ") && cpu.output.contains("loss_scale 32768, skipped_steps 0"), "\(cpu.output)")
    #expect(cpu.output.contains("training still applies fp16's dynamic loss scaling"), "\(cpu.output)")
    let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
    #expect(lines.contains { $0.contains("\"loss_scale\": 32768.0") && $0.contains("\"skipped_steps\": 0") }, "\(lines)")
    // The reference backend computes f16 convolutions: evaluation runs the f16 graph, says nothing.
    let evaluate = try unet(["evaluate", "--device", "reference", "--precision", "fp16", "--model-dir", model] + tiny)
    #expect(evaluate.status == 0 && evaluate.output.contains("eval_dice_score"), "\(evaluate.output)")
    #expect(!evaluate.output.contains("convolutions"), "\(evaluate.output)")
  }

  /// The tensors' bytes of a safetensors file, by name.
  static func tensorBytes(_ url: URL) throws -> [String: Data] {
    let file = try Data(contentsOf: url)
    let length = Int(file.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    let header = try #require(try JSONSerialization.jsonObject(with: file.subdata(in: 8..<8 + length)) as? [String: Any])
    var out: [String: Data] = [:]
    for (name, value) in header where name != "__metadata__" {
      let offsets = try #require((value as? [String: Any])?["data_offsets"] as? [Int])
      out[name] = file.subdata(in: 8 + length + offsets[0]..<8 + length + offsets[1])
    }
    return out
  }

  @Test func onTheCPUTheLossScaledRunEqualsTheFP32RunBitForBit() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path
    let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "5", "--test-count", "1"])
    #expect(synth.status == 0, "\(synth.output)")
    var files: [[String: Data]] = []
    for precision in ["fp32", "fp16"] {
      let dir = root.appendingPathComponent(precision)
      let r = try unet(["train", "--exec-mode", "train", "--precision", precision, "--max-steps", "3", "--batch-size", "2", "--fold", "0",
                        "--data-dir", data, "--model-dir", dir.path] + tinyModel)
      #expect(r.status == 0, "\(r.output)")
      files.append(try Self.tensorBytes(dir.appendingPathComponent("checkpoint.safetensors")))
    }
    // Weights and Adam's moments: scaling by 2^15 and back is exact, so nothing differs.
    #expect(files[0].count > 0 && files[0].keys.sorted() == files[1].keys.sorted())
    let differing = files[0].keys.filter { files[0][$0] != files[1][$0] }.sorted()
    #expect(differing.isEmpty, "tensors that differ: \(differing)")
  }
}
