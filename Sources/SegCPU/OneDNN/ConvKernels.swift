import CDNNL
import SegCore

// MARK: - Geometry in oneDNN's terms

/// One convolution's sizes in oneDNN's order: x (N, C, H, W), filter (O, C, KH, KW),
/// y (N, O, OH, OW), with strides and the two sides' padding, and the dtype of its operands (f32,
/// or bf16 with f32 accumulation inside oneDNN).
struct ConvProblem {
  let n, c, h, w, o, kh, kw, oh, ow: Int
  let strides, padL, padR: [Int64]
  let dtype: DType

  init(x: Shape, filter: Shape, y: Shape, geometry g: ConvGeometry, dtype: DType) {
    self.dtype = dtype
    (n, h, w, c) = (x[0], x[1], x[2], x[3])
    (kh, kw, o) = (filter[0], filter[1], filter[3])
    (oh, ow) = (y[1], y[2])
    strides = [Int64(g.strideH), Int64(g.strideW)]
    padL = [Int64(g.padding.top), Int64(g.padding.left)]
    padR = [Int64(g.padding.bottom), Int64(g.padding.right)]
  }

  /// Everything a primitive for this problem depends on.
  var keyValues: [Int] {
    [n, c, h, w, o, kh, kw, oh, ow] + (strides + padL + padR).map(Int.init) + [dtype == .f32 ? 0 : 1]
  }

  func src() throws -> dnnl_memory_desc_t { try Layout.any([n, c, h, w], dtype) }
  func weights() throws -> dnnl_memory_desc_t { try Layout.any([o, c, kh, kw], dtype) }
  func dst() throws -> dnnl_memory_desc_t { try Layout.any([n, o, oh, ow], dtype) }

  /// The forward primitive (no bias, no post-op) that the backward ones are made with as a hint.
  func forwardHint() throws -> DNNLPrimitive {
    try PrimitiveCache.get(PrimitiveKey("conv2d.hint", keyValues)) {
      var (s, wt, d) = (try src(), try weights(), try dst())
      var desc = dnnl_convolution_desc_t()
      try check(
        dnnl_convolution_forward_desc_init(
          &desc, dnnl_forward_training, dnnl_convolution_direct, &s, &wt, nil, &d, strides, padL, padR),
        "dnnl_convolution_forward_desc_init")
      return try DNNLPrimitive("convolution forward", opDesc: &desc)
    }
  }
}

// MARK: - Kernels

/// oneDNN convolutions. Activations and filters go in whatever layout the primitive chose ('any'
/// formats, blocked on AVX2/AVX-512), reordered once per tensor; outputs stay in that layout.
enum ConvKernels {
  /// conv2d: x [N,H,W,C], filter [KH,KW,C,O], optional bias [O]; ReLU as a post-op.
  static func forward(_ op: Conv2D, _ inputs: [CPUStorage], _ output: TensorType) throws -> CPUStorage {
    let p = ConvProblem(x: inputs[0].type.shape, filter: inputs[1].type.shape, y: output.shape, geometry: op.geometry, dtype: output.dtype)
    let hasBias = inputs.count == 3
    let relu = op.activation == .relu
    if let empty = try emptyConv(inputs, output, bias: hasBias ? inputs[2] : nil, relu: relu) { return empty }

    let key = PrimitiveKey("conv2d", p.keyValues + [hasBias ? 1 : 0, relu ? 1 : 0])
    let prim = try PrimitiveCache.get(key) {
      var (s, wt, d) = (try p.src(), try p.weights(), try p.dst())
      var b = try Layout.make([p.o], dnnl_a, hasBias ? inputs[2].type.dtype : .f32)
      var desc = dnnl_convolution_desc_t()
      let status = hasBias
        ? dnnl_convolution_forward_desc_init(
          &desc, dnnl_forward_training, dnnl_convolution_direct, &s, &wt, &b, &d, p.strides, p.padL, p.padR)
        : dnnl_convolution_forward_desc_init(
          &desc, dnnl_forward_training, dnnl_convolution_direct, &s, &wt, nil, &d, p.strides, p.padL, p.padR)
      try check(status, "dnnl_convolution_forward_desc_init")
      let attr = try reluPostOpAttr(relu)
      defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
      return try DNNLPrimitive("convolution forward", opDesc: &desc, attr: attr)
    }

    var args: [(Int32, DNNLMemory)] = [
      (DNNL_ARG_SRC, try inputs[0].memory(prim.layout(dnnl_query_src_md), role: .activation)),
      (DNNL_ARG_WEIGHTS, try inputs[1].memory(prim.layout(dnnl_query_weights_md), role: .filter)),
    ]
    if hasBias { args.append((DNNL_ARG_BIAS, try inputs[2].memory(prim.layout(dnnl_query_weights_md, 1), role: .flat))) }
    let y = try DNNLMemory.output(0, prim.layout(dnnl_query_dst_md))
    args.append((DNNL_ARG_DST, y))
    try prim.execute(args, "convolution forward")
    return try CPUStorage(y, role: .activation, type: output)
  }

  /// conv2dBackwardData: dy [N,OH,OW,O], filter [KH,KW,C,O] -> dx [N,H,W,C].
  static func backwardData(_ op: Conv2DBackwardData, _ inputs: [CPUStorage], _ output: TensorType) throws -> CPUStorage {
    let p = ConvProblem(x: output.shape, filter: inputs[1].type.shape, y: inputs[0].type.shape, geometry: op.geometry, dtype: output.dtype)
    if let empty = try emptyConv(inputs, output, bias: nil, relu: false) { return empty }

    let prim = try PrimitiveCache.get(PrimitiveKey("conv2dBackwardData", p.keyValues)) {
      let hint = try p.forwardHint()
      var (s, wt, d) = (try p.src(), try p.weights(), try p.dst())
      var desc = dnnl_convolution_desc_t()
      try check(
        dnnl_convolution_backward_data_desc_init(
          &desc, dnnl_convolution_direct, &s, &wt, &d, p.strides, p.padL, p.padR),
        "dnnl_convolution_backward_data_desc_init")
      return try DNNLPrimitive("convolution backward data", opDesc: &desc, hint: hint)
    }

    let dx = try DNNLMemory.output(0, prim.layout(dnnl_query_diff_src_md))
    try prim.execute(
      [
        (DNNL_ARG_DIFF_DST, try inputs[0].memory(prim.layout(dnnl_query_diff_dst_md), role: .activation)),
        (DNNL_ARG_WEIGHTS, try inputs[1].memory(prim.layout(dnnl_query_weights_md), role: .filter)),
        (DNNL_ARG_DIFF_SRC, dx),
      ], "convolution backward data")
    return try CPUStorage(dx, role: .activation, type: output)
  }

  /// conv2dBackwardFilter: x [N,H,W,C], dy [N,OH,OW,O] -> dw [KH,KW,C,O].
  static func backwardFilter(_ op: Conv2DBackwardFilter, _ inputs: [CPUStorage], _ output: TensorType) throws -> CPUStorage {
    let p = ConvProblem(x: inputs[0].type.shape, filter: output.shape, y: inputs[1].type.shape, geometry: op.geometry, dtype: output.dtype)
    if let empty = try emptyConv(inputs, output, bias: nil, relu: false) { return empty }

    let prim = try PrimitiveCache.get(PrimitiveKey("conv2dBackwardFilter", p.keyValues)) {
      let hint = try p.forwardHint()
      var (s, wt, d) = (try p.src(), try p.weights(), try p.dst())
      var desc = dnnl_convolution_desc_t()
      try check(
        dnnl_convolution_backward_weights_desc_init(
          &desc, dnnl_convolution_direct, &s, &wt, nil, &d, p.strides, p.padL, p.padR),
        "dnnl_convolution_backward_weights_desc_init")
      return try DNNLPrimitive("convolution backward weights", opDesc: &desc, hint: hint)
    }

    let dw = try DNNLMemory.output(0, prim.layout(dnnl_query_diff_weights_md))
    try prim.execute(
      [
        (DNNL_ARG_SRC, try inputs[0].memory(prim.layout(dnnl_query_src_md), role: .activation)),
        (DNNL_ARG_DIFF_DST, try inputs[1].memory(prim.layout(dnnl_query_diff_dst_md), role: .activation)),
        (DNNL_ARG_DIFF_WEIGHTS, dw),
      ], "convolution backward weights")
    return try CPUStorage(dw, role: .filter, type: output)
  }

  // MARK: Empty operands

  /// The result when some operand has no elements (oneDNN rejects zero-sized convolutions): every
  /// sum is over nothing, so the output is zero, or relu(bias) for a forward conv with a bias.
  /// nil when every operand has elements.
  private static func emptyConv(
    _ inputs: [CPUStorage], _ output: TensorType, bias: CPUStorage?, relu: Bool
  ) throws -> CPUStorage? {
    guard output.shape.count == 0 || inputs.prefix(2).contains(where: { $0.type.shape.count == 0 }) else { return nil }
    let count = output.shape.count
    let buffer = HostBuffer(byteCount: count * output.dtype.byteSize, zeroed: true)
    if let bias, count > 0 {
      let o = output.shape[3]
      let biasBuffer = try bias.plainBuffer()
      withExtendedLifetime(biasBuffer) {
        if output.dtype == .bf16 {
          // relu and the copy are exact on bf16 values, so the bits carry over.
          let b = biasBuffer.pointer.assumingMemoryBound(to: UInt16.self)
          let out = buffer.pointer.assumingMemoryBound(to: UInt16.self)
          for i in 0..<count { out[i] = relu && b[i % o] & 0x8000 != 0 ? 0 : b[i % o] }
        } else {
          let b = biasBuffer.pointer.assumingMemoryBound(to: Float.self)
          let out = buffer.pointer.assumingMemoryBound(to: Float.self)
          for i in 0..<count { out[i] = relu ? max(b[i % o], 0) : b[i % o] }
        }
      }
    }
    return CPUStorage(plain: buffer, type: output)
  }
}
