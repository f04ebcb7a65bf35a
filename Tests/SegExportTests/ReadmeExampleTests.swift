import Foundation
import SegCPU
import SegCore
import SegData
import SegExport
import SegNN
import SegTestSupport
import SegTrain
import Testing

// MARK: - The README's ONNX Runtime example

/// Whether the tests' Python has what the example imports.
let pythonCanRunExample = TestPython.run(["-c", "import numpy, onnxruntime, PIL"]).status == 0

@Suite struct ReadmeExampleTests {
  /// The Python block after the `<!-- onnxruntime-example -->` marker of README.md.
  static func example() throws -> String {
    let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("README.md")
    let text = try String(contentsOf: readme, encoding: .utf8)
    let marker = try #require(text.range(of: "<!-- onnxruntime-example -->\n```python\n"), "README.md lost its example's marker")
    let end = try #require(text.range(of: "\n```", range: marker.upperBound..<text.endIndex))
    return String(text[marker.upperBound..<end.lowerBound])
  }

  /// Runs the example, as a user would paste it, in a folder holding model.onnx and slice.png, and
  /// compares its mask with `unet predict`'s: on an image of whole output tiles both cut the same
  /// tiles, so the masks agree wherever the two classes' scores are not within rounding of a tie.
  @Test(.enabled(if: pythonCanRunExample, "needs Python with numpy, onnxruntime and Pillow: run `bash scripts/setup.sh --tests`"))
  func theExampleRunsAndAgreesWithOurPrediction() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("segexport-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var config = UNetConfig()
    (config.inputSize, config.depth, config.baseFilters) = (92, 2, 4)
    let model = try UNet(config: config, seed: 5, on: CPUBackend.shared)
    let weights = try Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, try $0.value.host()) })
    try ONNXExporter(config: config, weights: weights).write(to: dir.appendingPathComponent("model.onnx"))
    let (w, h) = (104, 52)  // 2 x 1 output tiles of 52
    let slice = SyntheticEM.generate(count: 1, size: 104, seed: 9)[0]
    let gray = GrayImage(width: w, height: h, pixels: Array(slice.image.prefix(w * h)))
    try PNG.write(try Image(gray), to: dir.appendingPathComponent("slice.png"))

    let script = "import os, sys\nos.chdir(sys.argv[1])\n" + (try Self.example())
    let run = TestPython.run(["-c", script, dir.path], mergingErrors: true)
    try #require(run.status == 0, "the README's example failed: \(String(decoding: run.output, as: UTF8.self))")
    let theirs = try PNG.read(contentsOf: dir.appendingPathComponent("mask.png"))
    #expect(theirs.width == w && theirs.height == h)
    let ours = try predictMasks(model, images: [gray], batchSize: 1)[0]
    let agree = zip(theirs.samples, ours.pixels).filter { Int($0) == Int($1) }.count
    #expect(Double(agree) >= 0.999 * Double(w * h), "\(agree) of \(w * h) pixels agree")
  }
}
