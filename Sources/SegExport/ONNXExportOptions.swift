import SegNN

// MARK: - Options

/// How `ONNXExporter` lays out the model it writes.
public struct ONNXExportOptions: Equatable, Sendable {
  /// The layout of the input and output tensors.
  public enum Layout: String, CaseIterable, Sendable {
    /// [N,C,H,W], ONNX's own: no transposes around the graph.
    case nchw
    /// [N,H,W,C], as our tensors: a Transpose after the input and one before the output.
    case nhwc
  }

  /// The element type of the weights, activations, input and output.
  public enum Precision: String, CaseIterable, Sendable {
    /// IEEE single precision: the checkpoint's weights as they are.
    case fp32
    /// IEEE half precision: weights rounded to nearest; the input and output are float16 too.
    case fp16
  }

  public var layout = Layout.nchw
  public var precision = Precision.fp32
  /// Ends the graph with a softmax over the classes (output "probabilities"); without it the
  /// output is the raw scores ("logits").
  public var softmax = false
  /// The ONNX operator set the graph declares (17 is the oldest this writer supports).
  public var opset = 17

  /// fp32, NCHW, logits, opset 17.
  public init() {}
}

// MARK: - Metadata keys

/// The `metadata_props` keys of an exported model: what an ONNX Runtime script needs to tile an
/// image as `unet predict` does.
public enum ONNXMetadataKey {
  /// Side S of the square input tile (pixels).
  public static let inputSize = "unet.input_size"
  /// Side S' of the square output tile (S' = S with same padding, smaller with valid).
  public static let outputSize = "unet.output_size"
  /// (S - S') / 2: the context an input tile adds on each side of its output tile.
  public static let margin = "unet.margin"
  /// "valid" or "same": how the 3x3 convolutions pad.
  public static let padding = "unet.padding"
  /// Number of classes (output channels).
  public static let classes = "unet.classes"
  /// Number of input channels.
  public static let inputChannels = "unet.input_channels"
  /// "nchw" or "nhwc": the layout of the input and output.
  public static let layout = "unet.layout"
  /// "fp32" or "fp16": the element type of the input and output.
  public static let precision = "unet.precision"
  /// "logits" or "probabilities": what the output holds.
  public static let output = "unet.output"
  /// How 8-bit samples become the input: "x / 127.5 - 1".
  public static let normalisation = "unet.normalisation"
  /// How tiles are cut: the image mirrored beyond its borders, each output tile from the input tile centred on it.
  public static let tiling = "unet.tiling"
  /// The `UNetConfig` as JSON.
  public static let config = "unet.config"
}
