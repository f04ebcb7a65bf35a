import Foundation
import SegData
import Testing

// MARK: - Compiled evaluation and prediction

@Suite(.serialized) struct CompiledCLITests {
  /// `unet evaluate --xla` and `unet predict --xla` replay the compiled forward pass through the
  /// same kernels: the same scores and the same probability files, byte for byte, as without it.
  @Test func evaluateAndPredictWithXLAEqualTheEagerRun() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model").path
    let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "5", "--test-count", "2"])
    #expect(synth.status == 0, "\(synth.output)")
    let train = try unet(["train", "--exec-mode", "train", "--max-steps", "2", "--data-dir", data, "--model-dir", model, "--batch-size", "2", "--fold", "0"] + tinyModel)
    #expect(train.status == 0, "\(train.output)")

    var reports: [Data] = []
    for flags in [[], ["--xla"]] {
      let report = root.appendingPathComponent("eval\(flags.count).json")
      let evaluate = try unet(["evaluate", "--data-dir", data, "--model-dir", model, "--fold", "0", "--output", report.path] + flags)
      #expect(evaluate.status == 0, "\(evaluate.output)")
      reports.append(try Data(contentsOf: report))
    }
    #expect(reports.count == 2 && reports[0] == reports[1])

    let inputs = root.appendingPathComponent("inputs")
    try FileManager.default.createDirectory(at: inputs, withIntermediateDirectories: true)
    for (i, slice) in SyntheticEM.generate(count: 2, size: 45, seed: 8).enumerated() {
      try ImageFile.write(Image(width: 45, height: 45, channels: 1, bitDepth: 8, samples: slice.image.map(UInt16.init)), to: inputs.appendingPathComponent("s\(i).png"))
    }
    var probabilities: [Data] = []
    let dump = root.appendingPathComponent("graphs")
    for flags in [[], ["--xla", "--dump-graph", dump.path]] {
      let out = root.appendingPathComponent("out\(flags.count)")
      let predict = try unet(["predict", "--model-dir", model, "--input", inputs.path, "--output", out.path, "--probabilities"] + flags)
      #expect(predict.status == 0, "\(predict.output)")
      let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix("-probabilities.tif") }.sorted()
      #expect(!files.isEmpty)
      probabilities.append(try files.reduce(into: Data()) { $0 += try Data(contentsOf: out.appendingPathComponent($1)) })
    }
    #expect(probabilities.count == 2 && probabilities[0] == probabilities[1])
    // The compiled prediction's program was printed, pass by pass.
    let dumped = try FileManager.default.contentsOfDirectory(atPath: dump.path)
    #expect(dumped.contains { $0.hasPrefix("predict-1-") && $0.hasSuffix("memory-check.txt") }, "\(dumped)")
  }
}
