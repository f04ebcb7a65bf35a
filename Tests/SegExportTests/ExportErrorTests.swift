import Foundation
import SegCore
import SegExport
import SegNN
import Testing

// MARK: - Models that cannot be exported

@Suite struct ExportErrorTests {
  static func weights(_ config: UNetConfig) throws -> [String: HostTensor] {
    let model = try UNet(config: config, seed: 1, on: ReferenceBackend.shared)
    return try Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, try $0.value.host()) })
  }

  static var small: UNetConfig {
    var c = UNetConfig()
    (c.inputSize, c.depth, c.baseFilters, c.padding) = (32, 2, 2, .same)
    return c
  }

  func expectError(_ words: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
      try body()
      Issue.record("no error; expected one saying \"\(words)\"", sourceLocation: sourceLocation)
    } catch {
      #expect("\(error)".contains(words), "\(error)", sourceLocation: sourceLocation)
    }
  }

  @Test func wrongWeightsAreNamed() throws {
    let good = try Self.weights(Self.small)
    var missing = good
    missing["head.kernel"] = nil
    expectError("\"head.kernel\" is missing") { _ = try ONNXExporter(config: Self.small, weights: missing) }
    var stray = good
    stray["stray"] = good["head.bias"]
    expectError("\"stray\" is not a parameter") { _ = try ONNXExporter(config: Self.small, weights: stray) }
    var reshaped = good
    reshaped["upconv0.kernel"] = HostTensor(type: TensorType([2, 2, 2, 4], .f32), repeating: 0)
    expectError("\"upconv0.kernel\" has shape [2, 2, 2, 4]") { _ = try ONNXExporter(config: Self.small, weights: reshaped) }
    var wider = Self.small
    wider.baseFilters = 4
    expectError("has shape") { _ = try ONNXExporter(config: wider, weights: good) }
  }

  @Test func valuesAFileCannotHoldStopTheExportAndWriteNothing() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("segexport-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var w = try Self.weights(Self.small)
    let bias = w["head.bias"]!
    w["head.bias"] = HostTensor(type: bias.type, doubles: [Double.nan] + Array(repeating: 0, count: bias.shape.count - 1))
    let url = dir.appendingPathComponent("m.onnx")
    expectError("\"head.bias\" holds nan") { try ONNXExporter(config: Self.small, weights: w).write(to: url) }
    w["head.bias"] = HostTensor(type: bias.type, doubles: [1e6] + Array(repeating: 0, count: bias.shape.count - 1))
    var fp16 = ONNXExportOptions()
    fp16.precision = .fp16
    expectError("beyond float16's range") { try ONNXExporter(config: Self.small, weights: w, options: fp16).write(to: url) }
    #expect(!FileManager.default.fileExists(atPath: url.path))
    // The same weights fit fp32.
    try ONNXExporter(config: Self.small, weights: w).write(to: url)
    #expect(FileManager.default.fileExists(atPath: url.path))
  }

  @Test func badConfigsAndOptionsAreRefused() throws {
    var bad = Self.small
    bad.inputSize = 33
    expectError("inputSize") { _ = try ONNXExporter(config: bad, weights: try Self.weights(Self.small)) }
    var old = ONNXExportOptions()
    old.opset = 11
    expectError("opset 11 is too old") { _ = try ONNXExporter(config: Self.small, weights: try Self.weights(Self.small), options: old) }
  }
}
