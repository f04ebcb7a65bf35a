import CDNNL
import SegCore

// MARK: - Max pooling

/// oneDNN max pooling, valid padding, in the input's own layout (blocked when its producer was a
/// oneDNN op, NHWC otherwise).
///
/// Ties: the core's rule sends a window's gradient to its first maximum in row-major window order.
/// oneDNN's workspace records, per output, the window position of the maximum, scanning the window
/// row by row and replacing it only on a strictly greater value, which is the same rule; the tests
/// check it on inputs full of ties. The core's backward op has no workspace input, so the backward
/// kernel recomputes the forward pass in training mode to get one.
enum PoolingKernels {
  /// maxPool2d: x [N,H,W,C] -> [N,OH,OW,C].
  static func forward(_ op: MaxPool2D, _ x: CPUStorage, _ output: TensorType) throws -> CPUStorage {
    if output.shape.count == 0 { return CPUStorage(plain: HostBuffer(byteCount: 0), type: output) }
    let src = try inputLayout(x)
    let prim = try forwardPrimitive(op, src: src, output: output, training: false)
    let y = try DNNLMemory.output(0, prim.layout(dnnl_query_dst_md))
    try prim.execute(
      [(DNNL_ARG_SRC, try x.memory(src, role: .activation)), (DNNL_ARG_DST, y)], "pooling forward")
    return try CPUStorage(y, role: .activation, type: output)
  }

  /// maxPool2dBackward: x [N,H,W,C], dy [N,OH,OW,C] -> dx [N,H,W,C].
  static func backward(_ op: MaxPool2DBackward, _ x: CPUStorage, _ dy: CPUStorage, _ output: TensorType) throws -> CPUStorage {
    if output.shape.count == 0 { return CPUStorage(plain: HostBuffer(byteCount: 0), type: output) }
    if dy.type.shape.count == 0 {
      return CPUStorage(plain: HostBuffer(byteCount: output.shape.count * output.dtype.byteSize, zeroed: true), type: output)
    }
    let src = try inputLayout(x)
    let fwd = try forwardPrimitive(op.pool, src: src, output: dy.type, training: true)
    let dstLayout = try fwd.layout(dnnl_query_dst_md)
    let wsLayout = try fwd.layout(dnnl_query_workspace_md)
    let bwd = try PrimitiveCache.get(PrimitiveKey("maxPool2dBackward", poolValues(op.pool), layouts: [src])) {
      var (ds, dd) = (src.md, dstLayout.md)
      var desc = dnnl_pooling_desc_t()
      try check(
        dnnl_pooling_backward_desc_init(
          &desc, dnnl_pooling_max, &ds, &dd, strides(op.pool), kernel(op.pool), [0, 0], [0, 0]),
        "dnnl_pooling_backward_desc_init")
      return try DNNLPrimitive("pooling backward", opDesc: &desc, hint: fwd)
    }

    // Recompute the forward pass for its workspace (which window element won).
    let xm = try x.memory(src, role: .activation)
    let workspace = try DNNLMemory(wsLayout)
    try fwd.execute(
      [(DNNL_ARG_SRC, xm), (DNNL_ARG_DST, try DNNLMemory(dstLayout)), (DNNL_ARG_WORKSPACE, workspace)],
      "pooling forward (training)")
    let dx = try DNNLMemory.output(0, bwd.layout(dnnl_query_diff_src_md))
    try bwd.execute(
      [
        (DNNL_ARG_DIFF_DST, try dy.memory(bwd.layout(dnnl_query_diff_dst_md), role: .activation)),
        (DNNL_ARG_WORKSPACE, workspace), (DNNL_ARG_DIFF_SRC, dx),
      ], "pooling backward")
    return try CPUStorage(dx, role: .activation, type: output)
  }

  // MARK: Helpers

  /// The layout pooling runs in: the input's blocked layout if it has one, else NHWC.
  private static func inputLayout(_ x: CPUStorage) throws -> Layout {
    try x.blockedLayout(.activation) ?? Layout.plain(x.type.shape, .activation, x.type.dtype)
  }

  private static func forwardPrimitive(_ op: MaxPool2D, src: Layout, output: TensorType, training: Bool) throws -> DNNLPrimitive {
    let name = training ? "maxPool2d.training" : "maxPool2d"
    return try PrimitiveCache.get(PrimitiveKey(name, poolValues(op), layouts: [src])) {
      let y = output.shape
      var s = src.md
      var d = try Layout.any([y[0], y[3], y[1], y[2]], output.dtype)
      var desc = dnnl_pooling_desc_t()
      try check(
        dnnl_pooling_forward_desc_init(
          &desc, training ? dnnl_forward_training : dnnl_forward_inference, dnnl_pooling_max, &s, &d,
          strides(op), kernel(op), [0, 0], [0, 0]),
        "dnnl_pooling_forward_desc_init")
      return try DNNLPrimitive("pooling forward", opDesc: &desc)
    }
  }

  private static func poolValues(_ op: MaxPool2D) -> [Int] { [op.windowH, op.windowW, op.strideH, op.strideW] }
  private static func strides(_ op: MaxPool2D) -> [Int64] { [Int64(op.strideH), Int64(op.strideW)] }
  private static func kernel(_ op: MaxPool2D) -> [Int64] { [Int64(op.windowH), Int64(op.windowW)] }
}

// MARK: - ReLU

/// oneDNN ReLU forward and backward, in the operands' own layout: a tensor whose producer chose a
/// blocked layout stays blocked; any other is seen as one flat row-major dimension.
enum ReLUKernels {
  /// relu: max(x, 0) elementwise.
  static func forward(_ x: CPUStorage, _ output: TensorType) throws -> CPUStorage {
    if output.shape.count == 0 { return CPUStorage(plain: HostBuffer(byteCount: 0), type: output) }
    let (layout, role) = try sharedLayout([x])
    let prim = try PrimitiveCache.get(PrimitiveKey("relu", [], layouts: [layout])) {
      var md = layout.md
      var desc = dnnl_eltwise_desc_t()
      try check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, dnnl_eltwise_relu, &md, 0, 0), "dnnl_eltwise_forward_desc_init")
      return try DNNLPrimitive("eltwise relu forward", opDesc: &desc)
    }
    let y = try DNNLMemory.output(0, layout)
    try prim.execute([(DNNL_ARG_SRC, try x.memory(layout, role: role)), (DNNL_ARG_DST, y)], "eltwise relu forward")
    return try CPUStorage(y, role: role, type: output)
  }

  /// reluBackward(dy, y): dy where y > 0, else 0 (oneDNN's relu_use_dst_for_bwd with alpha 0).
  static func backward(_ dy: CPUStorage, _ y: CPUStorage, _ output: TensorType) throws -> CPUStorage {
    if output.shape.count == 0 { return CPUStorage(plain: HostBuffer(byteCount: 0), type: output) }
    let (layout, role) = try sharedLayout([dy, y])
    let prim = try PrimitiveCache.get(PrimitiveKey("reluBackward", [], layouts: [layout])) {
      let hint = try PrimitiveCache.get(PrimitiveKey("relu.hint", [], layouts: [layout])) {
        var md = layout.md
        var desc = dnnl_eltwise_desc_t()
        try check(
          dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training, dnnl_eltwise_relu_use_dst_for_bwd, &md, 0, 0),
          "dnnl_eltwise_forward_desc_init")
        return try DNNLPrimitive("eltwise relu forward", opDesc: &desc)
      }
      var (dmd, md) = (layout.md, layout.md)
      var desc = dnnl_eltwise_desc_t()
      try check(
        dnnl_eltwise_backward_desc_init(&desc, dnnl_eltwise_relu_use_dst_for_bwd, &dmd, &md, 0, 0),
        "dnnl_eltwise_backward_desc_init")
      return try DNNLPrimitive("eltwise relu backward", opDesc: &desc, hint: hint)
    }
    let dx = try DNNLMemory.output(0, layout)
    try prim.execute(
      [
        (DNNL_ARG_DST, try y.memory(layout, role: role)), (DNNL_ARG_DIFF_DST, try dy.memory(layout, role: role)),
        (DNNL_ARG_DIFF_SRC, dx),
      ], "eltwise relu backward")
    return try CPUStorage(dx, role: role, type: output)
  }

  /// The first blocked activation layout among the operands, else the flat row-major one.
  private static func sharedLayout(_ xs: [CPUStorage]) throws -> (Layout, TensorRole) {
    for x in xs {
      if let l = x.blockedLayout(.activation) { return (l, .activation) }
    }
    return (try Layout.plain(xs[0].type.shape, .flat, xs[0].type.dtype), .flat)
  }
}
