import Foundation
import SegCPU
import SegCore
import SegExport
import SegNN
import SegTestSupport
import SegTrain
import Testing

// MARK: - bench/trt_unet.py without a GPU

/// Whether the tests' Python has what the script's ONNX Runtime stand-in imports.
let pythonHasONNXRuntimeCPU = TestPython.run(["-c", "import numpy, onnxruntime"]).status == 0

/// The script, and the `unet` binary built beside the test bundle.
private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let script = repository.appendingPathComponent("bench/trt_unet.py").path
private let unetBinary: URL = {
  var dir = Bundle.main.bundleURL
  for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") { dir = bundle.bundleURL.deletingLastPathComponent() }
  return dir.appendingPathComponent("unet")
}()

/// A folder holding a valid-padded U-Net's checkpoint and its export with the softmax, `model.onnx`.
private func exportedModel() throws -> URL {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trt-script-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  var config = UNetConfig()
  (config.inputSize, config.depth, config.baseFilters) = (92, 2, 4)
  let model = try UNet(config: config, seed: 3, on: CPUBackend.shared)
  try Checkpoint(model: model, optimizer: Adam(learningRate: 1e-3)).save(to: dir.appendingPathComponent("checkpoint.safetensors"))
  var options = ONNXExportOptions()
  options.softmax = true
  let weights = try Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, try $0.value.host()) })
  try ONNXExporter(config: config, weights: weights, options: options).write(to: dir.appendingPathComponent("model.onnx"))
  return dir
}

@Suite(.serialized) struct TensorRTScriptTests {
  /// The stand-in path end to end: ONNX Runtime's CPU provider times each batch size beside `unet
  /// benchmark` on the CPU, and its probabilities of a mirror-padded tile match `unet predict`'s
  /// (16-bit, so within 1/65535 plus float rounding).
  @Test(.enabled(if: pythonHasONNXRuntimeCPU, "needs Python with numpy and onnxruntime: run `bash scripts/setup.sh --tests`"))
  func theONNXRuntimeStandInTimesBothAndComparesTheProbabilities() throws {
    let dir = try exportedModel()
    defer { try? FileManager.default.removeItem(at: dir) }
    let output = dir.appendingPathComponent("result.json")
    let run = TestPython.run([script, "--runtime", "onnxruntime", "--device", "cpu", "--precision", "fp32",
                              "--onnx", dir.appendingPathComponent("model.onnx").path, "--model-dir", dir.path, "--unet", unetBinary.path,
                              "--batch-sizes", "2,1", "--warmup-steps", "1", "--max-steps", "3", "--output", output.path], mergingErrors: true)
    try #require(run.status == 0, "\(String(decoding: run.output, as: UTF8.self))")
    let result = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any])
    #expect(result["runtime"] as? String == "onnxruntime" && result["input_size"] as? Int == 92 && result["output_size"] as? Int == 52)
    let rows = try #require(result["results"] as? [[String: Any]])
    #expect(rows.map { $0["batch"] as? Int } == [2, 1])
    for row in rows {
      let ours = (row["ours"] as? [String: Any])?["throughput"] as? Double, theirs = (row["onnxruntime"] as? [String: Any])?["throughput"] as? Double
      #expect((ours ?? 0) > 0 && (theirs ?? 0) > 0, "\(row)")
      // Ours ran the exported model's shape, not the default U-Net.
      #expect(((row["ours"] as? [String: Any])?["config"] as? [String: Any])?["input_size"] as? Int == 92, "\(row)")
    }
    let comparison = try #require(result["comparison"] as? [String: Any])
    let difference = try #require(comparison["largest_abs_difference"] as? Double)
    #expect(difference < 1e-4 && comparison["pixels"] as? Int == 52 * 52, "\(comparison)")
  }

  /// Bad arguments name their flag; a runtime that cannot be imported is a visible skip (exit 3).
  @Test(.enabled(if: pythonHasONNXRuntimeCPU, "needs Python with numpy and onnxruntime: run `bash scripts/setup.sh --tests`"))
  func argumentsAreCheckedAndAMissingTensorRTIsSaid() throws {
    let dir = try exportedModel()
    defer { try? FileManager.default.removeItem(at: dir) }
    let common = ["--onnx", dir.appendingPathComponent("model.onnx").path, "--model-dir", dir.path, "--unet", unetBinary.path,
                  "--output", dir.appendingPathComponent("r.json").path]
    for (flags, flag) in [(["--batch-sizes", "16,0"], "--batch-sizes"), (["--batch-sizes", "a"], "--batch-sizes"),
                          (["--max-steps", "3", "--warmup-steps", "3"], "--max-steps")] {
      let run = TestPython.run([script] + common + flags, mergingErrors: true)
      let text = String(decoding: run.output, as: UTF8.self)
      #expect(run.status == 2 && text.contains(flag), "\(flags): \(text)")
    }
    let noModel = TestPython.run([script] + common + ["--model-dir", FileManager.default.temporaryDirectory.path], mergingErrors: true)
    #expect(noModel.status == 2 && String(decoding: noModel.output, as: UTF8.self).contains("--model-dir"))
    if TestPython.run(["-c", "import tensorrt"]).status != 0 {
      let run = TestPython.run([script] + common + ["--runtime", "tensorrt"], mergingErrors: true)
      let text = String(decoding: run.output, as: UTF8.self)
      #expect(run.status == 3 && text.contains("skipped") && text.contains("tensorrt"), "\(text)")
    }
  }
}
