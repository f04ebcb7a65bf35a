import Foundation
import SegCore
import SegCPU
import SegExport
import SegNN
import SegTestSupport
import Testing

// MARK: - Python's onnx and onnxruntime

/// Whether the tests' Python (`TestPython`) has numpy, onnx and onnxruntime.
let pythonHasONNXRuntime = TestPython.run(["-c", "import numpy, onnx, onnxruntime"]).status == 0

/// Checks the model with onnx's checker (full_check: shapes inferred through the whole graph),
/// runs it in onnxruntime on the CPU on the raw little-endian input (NHWC, as our tensors) and
/// writes the output back as NHWC float32. Arguments: model, input, shape N,H,W,C, output.
let runScript = """
  import sys, numpy as np, onnx, onnxruntime as ort
  model_path, input_path, shape, output_path = sys.argv[1:5]
  model = onnx.load(model_path)
  onnx.checker.check_model(model, full_check=True)
  meta = {p.key: p.value for p in model.metadata_props}
  dtype = np.float16 if meta["unet.precision"] == "fp16" else np.float32
  x = np.fromfile(input_path, dtype="<f4").reshape([int(d) for d in shape.split(",")]).astype(dtype)
  if meta["unet.layout"] == "nchw":
      x = x.transpose(0, 3, 1, 2)
  session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
  (y,) = session.run(None, {"input": x})
  if meta["unet.layout"] == "nchw":
      y = y.transpose(0, 2, 3, 1)
  np.ascontiguousarray(y, dtype="<f4").tofile(output_path)
  """

// MARK: - Exported models against our forward pass

@Suite(.serialized) struct ONNXRuntimeTests {
  /// A configuration exported, with how and on how many images it is checked.
  struct Case: CustomTestStringConvertible {
    var config: UNetConfig
    var options: ONNXExportOptions
    var batch: Int
    var testDescription: String {
      "\(config.inputSize)->\(config.geometry(input: config.inputSize)!.output) \(config.padding) depth \(config.depth) "
        + "k\(config.upconvKernel) \(options.precision) \(options.layout)\(options.softmax ? " softmax" : "")"
    }
  }

  static func config(_ size: Int, _ padding: UNetConfig.Padding, depth: Int, filters: Int, classes: Int, channels: Int, upconv: Int) -> UNetConfig {
    var c = UNetConfig()
    (c.inputSize, c.padding, c.depth, c.baseFilters, c.classes, c.inputChannels, c.upconvKernel) =
      (size, padding, depth, filters, classes, channels, upconv)
    return c
  }

  static func options(_ layout: ONNXExportOptions.Layout, _ precision: ONNXExportOptions.Precision, softmax: Bool) -> ONNXExportOptions {
    var o = ONNXExportOptions()
    (o.layout, o.precision, o.softmax) = (layout, precision, softmax)
    return o
  }

  /// The reference's 572 -> 388 network (valid, depth 4, transposed kernel 3; 16 base filters
  /// instead of 64 keep it to seconds), a 'same' one with RGB input, three classes, kernel-2
  /// upsampling, NHWC and a softmax, and a small valid one in fp16.
  static let cases: [Case] = [
    Case(config: config(572, .valid, depth: 4, filters: 16, classes: 2, channels: 1, upconv: 3), options: options(.nchw, .fp32, softmax: false), batch: 1),
    Case(config: config(48, .same, depth: 3, filters: 4, classes: 3, channels: 3, upconv: 2), options: options(.nhwc, .fp32, softmax: true), batch: 2),
    Case(config: config(92, .valid, depth: 2, filters: 4, classes: 2, channels: 1, upconv: 3), options: options(.nchw, .fp16, softmax: false), batch: 2),
  ]

  @Test(.enabled(if: pythonHasONNXRuntime, "needs Python with numpy, onnx and onnxruntime: run `bash scripts/setup.sh --tests`"),
        arguments: cases)
  func onnxRuntimeMatchesOurForwardPass(_ c: Case) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("segexport-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let backend = CPUBackend.shared
    let model = try UNet(config: c.config, seed: 7, on: backend)
    // Random biases too: Glorot kernels alone would leave every bias's placement untested.
    var rng = SplitMix64(seed: 11)
    for p in model.parameters where p.name.hasSuffix(".bias") {
      let values = (0..<p.value.shape.count).map { _ in Float(rng.nextUnit() * 0.2 - 0.1) }
      p.value = try Tensor(HostTensor(shape: p.value.shape, floats: values), on: backend)
    }
    let s = c.config.inputSize
    let input = (0..<(c.batch * s * s * c.config.inputChannels)).map { _ in Float(rng.nextUnit() * 2 - 1) }
    let x = try Tensor(HostTensor(shape: [c.batch, s, s, c.config.inputChannels], floats: input), on: backend)
    var ours = try model(x).host().floats
    if c.options.softmax { ours = softmax(ours, classes: c.config.classes) }

    let weights = try Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, try $0.value.host()) })
    let modelURL = dir.appendingPathComponent("model.onnx")
    try ONNXExporter(config: c.config, weights: weights, options: c.options).write(to: modelURL)
    let inputURL = dir.appendingPathComponent("input.f32"), outputURL = dir.appendingPathComponent("output.f32")
    try Data(input.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }).write(to: inputURL)
    let shape = "\(c.batch),\(s),\(s),\(c.config.inputChannels)"
    let run = TestPython.run(["-c", runScript, modelURL.path, inputURL.path, shape, outputURL.path], mergingErrors: true)
    try #require(run.status == 0, "onnx/onnxruntime failed: \(String(decoding: run.output, as: UTF8.self))")
    let theirs = try Data(contentsOf: outputURL).withUnsafeBytes { raw in
      raw.bindMemory(to: UInt32.self).map { Float(bitPattern: UInt32(littleEndian: $0)) }
    }
    try #require(theirs.count == ours.count, "onnxruntime gave \(theirs.count) values, we \(ours.count)")
    let worst = zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0
    let scale = ours.map(abs).max() ?? 0
    // fp32: both compute the same sums in f32, in other orders. fp16: weights, input and every
    // activation rounded to half precision (relative error 2^-11 each) through about 20 layers.
    let bound: Float = c.options.precision == .fp32 ? 1e-4 : 1e-2 * max(1, scale)
    #expect(worst <= bound, "largest absolute difference \(worst) (bound \(bound), largest value \(scale))")
  }

  /// Softmax over the last axis of [..., classes] values.
  func softmax(_ v: [Float], classes k: Int) -> [Float] {
    var out = v
    for i in stride(from: 0, to: v.count, by: k) {
      let m = v[i..<i + k].max()!
      let e = v[i..<i + k].map { Foundation.exp(Double($0 - m)) }
      let sum = e.reduce(0, +)
      for j in 0..<k { out[i + j] = Float(e[j] / sum) }
    }
    return out
  }
}
