import Foundation
import SegCore
import SegNN
import SwiftProtobuf

// MARK: - Exporter

/// Writes a trained U-Net as an ONNX model (opset 17 or newer) that computes what `UNet` computes
/// at inference (no dropout): the same convolutions, poolings, 'same' stride-2 transposed
/// convolutions, centre crops and concatenations, on a fixed S x S tile with a dynamic batch.
/// Input "input" [N,C,S,S] (or [N,S,S,C]), output "logits" or "probabilities" [N,classes,S',S']
/// (or [N,S',S',classes]).
public struct ONNXExporter {
  public let config: UNetConfig
  /// The weights by `Parameter` name, as a checkpoint holds them (any floating-point dtype).
  public let weights: [String: HostTensor]
  public let options: ONNXExportOptions

  /// Checks the config, the options and that `weights` holds exactly the model's parameters with
  /// their shapes; throws `ExportError` (or the config's `SettingError`) naming the first problem.
  public init(config: UNetConfig, weights: [String: HostTensor], options: ONNXExportOptions = ONNXExportOptions()) throws {
    try config.validate()
    guard options.opset >= 17 else {
      throw ExportError("opset \(options.opset) is too old: this exporter writes opset 17 or newer")
    }
    let expected = ONNXExporter.parameterShapes(config)
    if let extra = Set(weights.keys).subtracting(expected.keys).sorted().first {
      throw ExportError("tensor \"\(extra)\" is not a parameter of the U-Net the checkpoint describes")
    }
    for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
      guard let w = weights[name] else { throw ExportError("weight \"\(name)\" is missing from the checkpoint") }
      guard w.shape.dims == shape else {
        throw ExportError("weight \"\(name)\" has shape \(w.shape.dims), the model's config needs \(shape)")
      }
      guard [.f32, .f64, .f16, .bf16].contains(w.dtype) else {
        throw ExportError("weight \"\(name)\" is \(w.dtype), not a floating-point tensor")
      }
    }
    self.config = config
    self.weights = weights
    self.options = options
  }

  /// Every parameter's name and shape for `config`, as `UNet` names and lays them out (conv
  /// kernels HWIO, transposed-conv kernels [k,k,out,in]).
  static func parameterShapes(_ c: UNetConfig) -> [String: [Int]] {
    var shapes: [String: [Int]] = [:]
    func conv(_ name: String, _ k: Int, _ cin: Int, _ cout: Int) {
      shapes[name + ".kernel"] = [k, k, cin, cout]
      shapes[name + ".bias"] = [cout]
    }
    let f = c.filters(level:)
    for level in 0..<c.depth {
      conv("encoder\(level).conv0", 3, level == 0 ? c.inputChannels : f(level - 1), f(level))
      conv("encoder\(level).conv1", 3, f(level), f(level))
      shapes["upconv\(level).kernel"] = [c.upconvKernel, c.upconvKernel, f(level), f(level + 1)]
      shapes["upconv\(level).bias"] = [f(level)]
      conv("decoder\(level).conv0", 3, 2 * f(level), f(level))
      conv("decoder\(level).conv1", 3, f(level), f(level))
    }
    conv("bottleneck.conv0", 3, f(c.depth - 1), f(c.depth))
    conv("bottleneck.conv1", 3, f(c.depth), f(c.depth))
    conv("head", 1, f(0), c.classes)
    return shapes
  }

  // MARK: - Files

  /// The serialized ModelProto. Throws when a weight is not finite, does not fit float16 (with
  /// fp16), or the whole exceeds protobuf's 2 GiB message limit.
  public func serialized() throws -> Data {
    let bytes = weights.values.reduce(0) { $0 + $1.shape.count } * (options.precision == .fp16 ? 2 : 4)
    guard bytes < Int(Int32.max) - (1 << 20) else {
      throw ExportError(
        "the weights take \(bytes) bytes, over the 2 GiB a single ONNX file can hold: export with --precision fp16 or train a smaller model")
    }
    return try model().serializedData()
  }

  /// Writes the model to `url` atomically: a failure leaves no file, or the previous one, there.
  public func write(to url: URL) throws {
    let data = try serialized()
    do {
      try data.write(to: url, options: .atomic)
    } catch {
      throw ExportError("\(url.path): cannot be written (\(error.localizedDescription)); choose another --output")
    }
  }

  // MARK: - Model

  /// The ModelProto: the graph, the opset, and the tile geometry in `metadata_props`.
  func model() throws -> Onnx_ModelProto {
    var m = Onnx_ModelProto()
    // IR version 8 is the one opset 17 came with; newer opsets need newer IRs.
    m.irVersion = options.opset >= 21 ? 10 : options.opset >= 19 ? 9 : 8
    m.producerName = "unetseg"
    m.producerVersion = "1"
    m.modelVersion = 1
    m.docString = "U-Net segmentation model exported by `unet export`."
    var opset = Onnx_OperatorSetIdProto()
    opset.domain = ""
    opset.version = Int64(options.opset)
    m.opsetImport = [opset]
    m.graph = try graph()
    m.metadataProps = try metadata().map { key, value in
      var e = Onnx_StringStringEntryProto()
      e.key = key
      e.value = value
      return e
    }
    return m
  }

  /// The metadata entries, in a fixed order.
  func metadata() throws -> [(String, String)] {
    let g = config.geometry(input: config.inputSize)!
    let json = try JSONEncoder.sortedKeys.encode(config)
    return [
      (ONNXMetadataKey.inputSize, String(config.inputSize)),
      (ONNXMetadataKey.outputSize, String(g.output)),
      (ONNXMetadataKey.margin, String((config.inputSize - g.output) / 2)),
      (ONNXMetadataKey.padding, config.padding.rawValue),
      (ONNXMetadataKey.classes, String(config.classes)),
      (ONNXMetadataKey.inputChannels, String(config.inputChannels)),
      (ONNXMetadataKey.layout, options.layout.rawValue),
      (ONNXMetadataKey.precision, options.precision.rawValue),
      (ONNXMetadataKey.output, options.softmax ? "probabilities" : "logits"),
      (ONNXMetadataKey.normalisation, "x / 127.5 - 1"),
      (ONNXMetadataKey.tiling, "image mirrored beyond its borders; each output tile from the input tile centred on it"),
      (ONNXMetadataKey.config, String(decoding: json, as: UTF8.self)),
    ]
  }
}

extension JSONEncoder {
  /// An encoder with sorted keys, so equal configs give equal bytes.
  static var sortedKeys: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return e
  }
}
