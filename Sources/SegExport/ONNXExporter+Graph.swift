import SegCore
import SegNN

// MARK: - Graph

extension ONNXExporter {
  /// The U-Net as ONNX nodes in NCHW, with transposes at the ends for NHWC.
  func graph() throws -> Onnx_GraphProto {
    let type: Onnx_TensorProto.DataType = options.precision == .fp16 ? .float16 : .float
    var b = ONNXGraphBuilder(name: "unet", floatType: type)
    let s = config.inputSize
    let geometry = config.geometry(input: s)!
    let c = config.inputChannels
    let nhwc = options.layout == .nhwc
    let outputName = options.softmax ? "probabilities" : "logits"
    let (o, k) = (geometry.output, config.classes)
    b.graph.input = [ONNXGraphBuilder.valueInfo("input", type: type, dims: nhwc ? [.named("N"), .fixed(s), .fixed(s), .fixed(c)] : [.named("N"), .fixed(c), .fixed(s), .fixed(s)])]
    b.graph.output = [ONNXGraphBuilder.valueInfo(outputName, type: type, dims: nhwc ? [.named("N"), .fixed(o), .fixed(o), .fixed(k)] : [.named("N"), .fixed(k), .fixed(o), .fixed(o)])]

    var h = nhwc ? b.node("Transpose", ["input"], [Attribute.ints("perm", [0, 3, 1, 2])]) : "input"
    var side = s
    let shrink = config.padding == .valid ? 2 : 0
    var skips: [(name: String, side: Int)] = []
    for level in 0..<config.depth {
      h = try conv(&b, "encoder\(level).conv0", h)
      h = try conv(&b, "encoder\(level).conv1", h)
      side -= 2 * shrink
      skips.append((h, side))
      h = b.node("MaxPool", [h], [Attribute.ints("kernel_shape", [2, 2]), Attribute.ints("strides", [2, 2])])
      side /= 2
    }
    h = try conv(&b, "bottleneck.conv0", h)
    h = try conv(&b, "bottleneck.conv1", h)
    side -= 2 * shrink
    for level in stride(from: config.depth - 1, through: 0, by: -1) {
      h = try upconv(&b, "upconv\(level)", h)
      side *= 2
      let skip = skips[level]
      // Centre crop of the skip to the upsampled side, as `centerCrop`: the odd pixel, if any, off the end.
      let begin = (skip.side - side) / 2
      let cropped = begin == 0 && skip.side == side ? skip.name : b.node("Slice", [
        skip.name, b.addInt64s("crop_starts", [begin, begin]), b.addInt64s("crop_ends", [begin + side, begin + side]),
        b.addInt64s("crop_axes", [2, 3]),
      ])
      h = b.node("Concat", [h, cropped], [Attribute.int("axis", 1)])
      h = try conv(&b, "decoder\(level).conv0", h)
      h = try conv(&b, "decoder\(level).conv1", h)
      side -= 2 * shrink
    }
    precondition(side == o, "the graph's output side \(side) differs from UNetConfig.geometry's \(o)")
    let last = nhwc || options.softmax
    h = try conv(&b, "head", h, relu: false, output: last ? nil : outputName)
    if options.softmax {
      h = b.node("Softmax", [h], [Attribute.int("axis", 1)], output: nhwc ? nil : outputName)
    }
    if nhwc {
      b.node("Transpose", [h], [Attribute.ints("perm", [0, 2, 3, 1])], output: outputName)
    }
    return b.graph
  }

  // MARK: - Layers

  /// A square convolution with bias (kernel HWIO -> OIHW), followed by a Relu unless `relu` is false.
  private func conv(
    _ b: inout ONNXGraphBuilder, _ name: String, _ x: String, relu: Bool = true, output: String? = nil
  ) throws -> String {
    let kernel = weights[name + ".kernel"]!
    let (kk, cin, cout) = (kernel.shape[0], kernel.shape[2], kernel.shape[3])
    try b.addFloats(name + ".kernel", dims: [cout, cin, kk, kk], permuted(kernel, [3, 2, 0, 1]))
    try b.addFloats(name + ".bias", dims: [cout], weights[name + ".bias"]!.floats)
    // 'same' pads (k-1)/2 on every side (k is odd); 'valid' and 1x1 pad nothing.
    let p = kk > 1 && config.padding == .same ? (kk - 1) / 2 : 0
    let y = b.node("Conv", [x, name + ".kernel", name + ".bias"], [
      Attribute.ints("kernel_shape", [kk, kk]), Attribute.ints("pads", [p, p, p, p]), Attribute.ints("strides", [1, 1]),
    ], output: relu ? nil : output)
    return relu ? b.node("Relu", [y], output: output) : y
  }

  /// A stride-2 transposed convolution as Keras's 'same' ([k,k,out,in] -> [in,out,k,k]), and a Relu.
  /// Keras computes out[2i+j] += in[i] * w[j] and keeps the first 2H of the (H-1)*2+k outputs:
  /// ONNX's pads crop (k-2)/2 at the start and the rest at the end, as TensorFlow splits them.
  private func upconv(_ b: inout ONNXGraphBuilder, _ name: String, _ x: String) throws -> String {
    let kernel = weights[name + ".kernel"]!
    let (kk, cout, cin) = (kernel.shape[0], kernel.shape[2], kernel.shape[3])
    try b.addFloats(name + ".kernel", dims: [cin, cout, kk, kk], permuted(kernel, [3, 2, 0, 1]))
    try b.addFloats(name + ".bias", dims: [cout], weights[name + ".bias"]!.floats)
    let before = (kk - 2) / 2, after = kk - 2 - before
    let y = b.node("ConvTranspose", [x, name + ".kernel", name + ".bias"], [
      Attribute.ints("kernel_shape", [kk, kk]), Attribute.ints("strides", [2, 2]),
      Attribute.ints("pads", [before, before, after, after]),
    ])
    return b.node("Relu", [y])
  }
}

// MARK: - Permutation

/// The f32 values of a rank-4 tensor with its axes reordered: result axis i is input axis perm[i].
func permuted(_ t: HostTensor, _ perm: [Int]) -> [Float] {
  let src = t.floats
  let dims = t.shape.dims
  var strides = [Int](repeating: 1, count: 4)
  for i in stride(from: 2, through: 0, by: -1) { strides[i] = strides[i + 1] * dims[i + 1] }
  let od = perm.map { dims[$0] }
  let os = perm.map { strides[$0] }
  var out = [Float]()
  out.reserveCapacity(src.count)
  for a in 0..<od[0] {
    for b in 0..<od[1] {
      for c in 0..<od[2] {
        for d in 0..<od[3] { out.append(src[a * os[0] + b * os[1] + c * os[2] + d * os[3]]) }
      }
    }
  }
  return out
}
