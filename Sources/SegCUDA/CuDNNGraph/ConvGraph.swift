import CCUDA
import SegCore

// MARK: - Key

/// Everything that makes one convolution graph (and so its plans) differ from another; the plan
/// cache's key. Tensors are NHWC; filters are OHWI (cuDNN's KRSC); `padding` may be asymmetric.
struct ConvGraphKey: Hashable, Sendable, Codable, CustomStringConvertible {
  /// What the graph computes.
  enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
    /// y = conv(x, w).
    case forward
    /// y = relu(conv(x, w) + bias), one fused graph.
    case forwardBiasReLU
    /// dx = conv's adjoint applied to dy (also the transposed convolution).
    case backwardData
    /// dw = the filter gradient of x and dy.
    case backwardFilter
  }

  /// The memory layout of the activations (only NHWC is built).
  enum Layout: String, Hashable, Sendable, Codable { case nhwc }

  var kind: Kind
  /// The input of the forward conv [batch, height, width, channels] (dx for backward-data).
  var batch: Int, height: Int, width: Int, channels: Int
  /// The forward conv's output channels and spatial size (dy for the backward ops).
  var outputChannels: Int, outputHeight: Int, outputWidth: Int
  var kernelHeight: Int, kernelWidth: Int
  var strideH: Int, strideW: Int
  var padTop: Int, padBottom: Int, padLeft: Int, padRight: Int
  /// The dtype of every tensor the graph reads and writes (f32, f16, bf16).
  var dtype: String
  /// Whether f32 may run on TF32 Tensor Cores (no effect on f16 and bf16).
  var tensorFloat32: Bool
  var layout: Layout = .nhwc
  /// The byte alignment of every buffer (our allocator's 256 covers cuDNN's 16).
  var alignment: Int = 16

  /// The key of the convolution with input [N,H,W,C], kernel (kh, kw), `out` output channels,
  /// output [N,OH,OW,out] and `geometry`.
  init(
    _ kind: Kind, input: Shape, kernel: (Int, Int), outputChannels: Int, output: (Int, Int), geometry: ConvGeometry,
    dtype: DType, tensorFloat32: Bool
  ) {
    self.kind = kind
    (batch, height, width, channels) = (input[0], input[1], input[2], input[3])
    self.outputChannels = outputChannels
    (outputHeight, outputWidth) = output
    (kernelHeight, kernelWidth) = kernel
    (strideH, strideW) = (geometry.strideH, geometry.strideW)
    let p = geometry.padding
    (padTop, padBottom, padLeft, padRight) = (p.top, p.bottom, p.left, p.right)
    self.dtype = dtype.rawValue
    self.tensorFloat32 = tensorFloat32 && dtype == .f32
  }

  var description: String {
    "\(kind.rawValue) \(dtype)\(tensorFloat32 ? "/tf32" : "") x[\(batch),\(height),\(width),\(channels)] "
      + "w[\(outputChannels),\(kernelHeight),\(kernelWidth),\(channels)] y[\(batch),\(outputHeight),\(outputWidth),\(outputChannels)] "
      + "strides (\(strideH),\(strideW)) padding (\(padTop),\(padBottom),\(padLeft),\(padRight))"
  }

  /// cuDNN's data type of `dtype`.
  var dataType: Int32 {
    switch dtype {
    case "f16": return CCUDA_CUDNN_DATA_HALF
    case "bf16": return CCUDA_CUDNN_DATA_BFLOAT16
    default: return CCUDA_CUDNN_DATA_FLOAT
    }
  }
}

// MARK: - Graph

/// The unique ids of the graph's tensors, which a variant pack pairs with device pointers.
enum ConvTensorID {
  /// x, or dx for backward-data.
  static let input = 1
  /// The filter, or dw for backward-filter.
  static let filter = 2
  /// y, or dy for the backward ops.
  static let output = 3
  /// The bias [1,K,1,1] of the fused graph.
  static let bias = 4
  static let convolved = 5
  static let biased = 6
}

/// Builds the operation graph of a `ConvGraphKey`: finalized tensors, convolution and operation
/// descriptors (no handle or GPU needed).
struct ConvGraphBuilder {
  let api: CUDNNGraphAPI

  /// The finalized operation graph of `key`, bound to `handle`'s GPU when there is one.
  func graph(_ key: ConvGraphKey, handle: ccuda_cudnnHandle? = nil) throws -> BackendDescriptor {
    let dt = key.dataType
    let x = try tensor(ConvTensorID.input, n: key.batch, c: key.channels, h: key.height, w: key.width, dt, key)
    let w = try tensor(ConvTensorID.filter, n: key.outputChannels, c: key.channels, h: key.kernelHeight, w: key.kernelWidth, dt, key)
    let conv = try convolution(key)
    var ops: [BackendDescriptor] = []
    switch key.kind {
    case .forward, .forwardBiasReLU:
      let fused = key.kind == .forwardBiasReLU
      let y = try tensor(
        fused ? ConvTensorID.convolved : ConvTensorID.output, n: key.batch, c: key.outputChannels, h: key.outputHeight,
        w: key.outputWidth, fused ? CCUDA_CUDNN_DATA_FLOAT : dt, key, virtual: fused)
      ops.append(try operation(.convolutionForward, [(.forwardX, x), (.forwardW, w), (.forwardY, y), (.forwardConvolution, conv)],
                               alpha: .forwardAlpha, beta: .forwardBeta))
      if fused { ops += try biasReLU(after: y, key) }
    case .backwardData:
      let dy = try tensor(ConvTensorID.output, n: key.batch, c: key.outputChannels, h: key.outputHeight, w: key.outputWidth, dt, key)
      ops.append(try operation(.convolutionBackwardData, [(.dataDX, x), (.dataW, w), (.dataDY, dy), (.dataConvolution, conv)],
                               alpha: .dataAlpha, beta: .dataBeta))
    case .backwardFilter:
      let dy = try tensor(ConvTensorID.output, n: key.batch, c: key.outputChannels, h: key.outputHeight, w: key.outputWidth, dt, key)
      ops.append(try operation(.convolutionBackwardFilter, [(.filterX, x), (.filterDW, w), (.filterDY, dy), (.filterConvolution, conv)],
                               alpha: .filterAlpha, beta: .filterBeta))
    }
    let graph = try BackendDescriptor(.operationGraph, api: api)
    if let handle { try graph.set(.graphHandle, handle: handle) }
    try graph.set(.graphOperations, descriptors: ops)
    try graph.finalize()
    return graph
  }

  /// relu(y + bias) into the output tensor, in f32 math.
  private func biasReLU(after y: BackendDescriptor, _ key: ConvGraphKey) throws -> [BackendDescriptor] {
    let k = key.outputChannels
    let bias = try tensor(ConvTensorID.bias, dims: [1, k, 1, 1], strides: [k, 1, k, k], key.dataType, key)
    let biased = try tensor(
      ConvTensorID.biased, n: key.batch, c: k, h: key.outputHeight, w: key.outputWidth, CCUDA_CUDNN_DATA_FLOAT, key, virtual: true)
    let out = try tensor(ConvTensorID.output, n: key.batch, c: k, h: key.outputHeight, w: key.outputWidth, key.dataType, key)
    let add = try pointwise(CCUDA_CUDNN_POINTWISE_ADD)
    let relu = try pointwise(CCUDA_CUDNN_POINTWISE_RELU_FWD)
    let addOp = try BackendDescriptor(.pointwiseOperation, api: api)
    try addOp.set(.pointwiseDescriptor, descriptors: [add])
    try addOp.set(.pointwiseX, descriptors: [y])
    try addOp.set(.pointwiseB, descriptors: [bias])
    try addOp.set(.pointwiseY, descriptors: [biased])
    try addOp.finalize()
    let reluOp = try BackendDescriptor(.pointwiseOperation, api: api)
    try reluOp.set(.pointwiseDescriptor, descriptors: [relu])
    try reluOp.set(.pointwiseX, descriptors: [biased])
    try reluOp.set(.pointwiseY, descriptors: [out])
    try reluOp.finalize()
    return [addOp, reluOp]
  }

  private func pointwise(_ mode: Int32) throws -> BackendDescriptor {
    let d = try BackendDescriptor(.pointwise, api: api)
    try d.set(.pointwiseMode, enumValue: mode, type: BackendValueType.pointwiseMode)
    try d.set(.pointwiseMathPrecision, enumValue: CCUDA_CUDNN_DATA_FLOAT, type: BackendValueType.dataType)
    try d.finalize()
    return d
  }

  /// A convolution operation with its tensors, alpha 1 and beta 0.
  private func operation(
    _ type: BackendDescriptorType, _ inputs: [(BackendAttribute, BackendDescriptor)], alpha: BackendAttribute, beta: BackendAttribute
  ) throws -> BackendDescriptor {
    let op = try BackendDescriptor(type, api: api)
    for (a, d) in inputs { try op.set(a, descriptors: [d]) }
    try op.set(alpha, float: 1)
    try op.set(beta, float: 0)
    try op.finalize()
    return op
  }

  /// Cross-correlation in f32 with the key's strides and (possibly asymmetric) padding.
  private func convolution(_ key: ConvGraphKey) throws -> BackendDescriptor {
    let d = try BackendDescriptor(.convolution, api: api)
    try d.set(.convolutionSpatialDims, int64: [2])
    try d.set(.convolutionComputeType, enumValue: CCUDA_CUDNN_DATA_FLOAT, type: BackendValueType.dataType)
    try d.set(.convolutionMode, enumValue: CCUDA_CUDNN_CROSS_CORRELATION, type: BackendValueType.convolutionMode)
    try d.set(.convolutionPrePaddings, int64: [key.padTop, key.padLeft])
    try d.set(.convolutionPostPaddings, int64: [key.padBottom, key.padRight])
    try d.set(.convolutionDilations, int64: [1, 1])
    try d.set(.convolutionStrides, int64: [key.strideH, key.strideW])
    try d.finalize()
    return d
  }

  /// An NHWC tensor: dimensions [N,C,H,W] with strides [H*W*C, 1, W*C, C].
  private func tensor(
    _ id: Int, n: Int, c: Int, h: Int, w: Int, _ dt: Int32, _ key: ConvGraphKey, virtual: Bool = false
  ) throws -> BackendDescriptor {
    try tensor(id, dims: [n, c, h, w], strides: [h * w * c, 1, w * c, c], dt, key, virtual: virtual)
  }

  private func tensor(
    _ id: Int, dims: [Int], strides: [Int], _ dt: Int32, _ key: ConvGraphKey, virtual: Bool = false
  ) throws -> BackendDescriptor {
    let d = try BackendDescriptor(.tensor, api: api)
    try d.set(.tensorDataType, enumValue: dt, type: BackendValueType.dataType)
    try d.set(.tensorDimensions, int64: dims)
    try d.set(.tensorStrides, int64: strides)
    try d.set(.tensorID, int64: [id])
    try d.set(.tensorAlignment, int64: [key.alignment])
    if virtual { try d.set(.tensorVirtual, bool: true) }
    try d.finalize()
    return d
  }
}
