import ArgumentParser
import Foundation
import SegExport
import SegTrain

// MARK: - unet export

/// `unet export`: the checkpoint in --model-dir as an ONNX model for ONNX Runtime and other runtimes.
struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Export the checkpoint in --model-dir as an ONNX model (opset 17, dynamic batch, the tile geometry in its metadata).")

  @Option(name: [.customLong("model-dir"), .customLong("model_dir")], help: "Directory holding checkpoint.safetensors.")
  var modelDir: String

  @Option(help: "The ONNX file to write.")
  var output: String

  @Option(help: "Layout of the input and output: nchw (ONNX's own) or nhwc.")
  var layout: String = ONNXExportOptions.Layout.nchw.rawValue

  @Option(help: "Element type of the weights, input and output: fp32 or fp16.")
  var precision: String = ONNXExportOptions.Precision.fp32.rawValue

  @Flag(help: "End with a softmax over the classes (output \"probabilities\" instead of \"logits\").")
  var softmax = false

  @Option(help: "ONNX operator set to declare (17 or newer).")
  var opset = 17

  func run() throws {
    var options = ONNXExportOptions()
    guard let l = ONNXExportOptions.Layout(rawValue: layout.lowercased()) else {
      throw CommandLineError("--layout \(layout) is not one of nchw, nhwc")
    }
    guard let p = ONNXExportOptions.Precision(rawValue: precision.lowercased()) else {
      throw CommandLineError("--precision \(precision) is not one of fp32, fp16 (the ONNX file's element type)")
    }
    options.layout = l
    options.precision = p
    options.softmax = softmax
    options.opset = opset
    let checkpointURL = URL(fileURLWithPath: modelDir).appendingPathComponent("checkpoint.safetensors")
    guard FileManager.default.fileExists(atPath: checkpointURL.path) else {
      throw CommandLineError("--model-dir \(modelDir): no checkpoint at \(checkpointURL.path); train into it first")
    }
    let checkpoint = try Checkpoint.load(from: checkpointURL)
    let exporter = try ONNXExporter(config: checkpoint.config, weights: checkpoint.weights, options: options)
    let url = URL(fileURLWithPath: output)
    try exporter.write(to: url)
    let g = checkpoint.config.geometry(input: checkpoint.config.inputSize)!
    print("unet export: wrote \(url.path) (\(options.precision.rawValue), \(options.layout.rawValue), opset \(options.opset), tile \(checkpoint.config.inputSize) -> \(g.output), \(checkpoint.config.classes) classes, \(options.softmax ? "probabilities" : "logits"))")
  }
}
