import CBlocked
import CDNNL
import SegCore

// MARK: - The encoder's gradient on blocked activations

extension BlockedKernels {
  /// skipGradient (x, dy, g) in one pass over f32 activations in one channel-blocked format (x's:
  /// nChw8c or nChw16c; dy and g reordered to it when they are in another), where the channels and
  /// the skip's start in g are whole blocks and windows do not overlap; nil otherwise (the separate
  /// ops run then). Instead of the skip's slice and pad, oneDNN's pooling backward (which runs the
  /// forward pooling again for its workspace) and the add with ReLU's backward, each block of
  /// channels of each stride cell finds its window's maxima once and writes every pixel of the cell
  /// (CBlocked's vector kernel): the same values, each sum rounded once in f32.
  static func skipGradient(_ op: SkipGradient, _ xs: [CPUStorage], _ output: TensorType) throws -> CPUStorage? {
    let pool = op.pool
    guard output.dtype == .f32, output.shape.count > 0, !pool.windowsOverlap,
      let (x, tag) = try blocked(xs[0]), output.shape[3] % tag.block == 0, op.channels % tag.block == 0
    else { return nil }
    func inFormat(_ t: CPUStorage) throws -> DNNLMemory {
      let d = t.type.shape.dims
      return try t.memory(Layout(Layout.make([d[0], d[3], d[1], d[2]], tag.format, .f32)), role: .activation)
    }
    let (dy, g) = (try inFormat(xs[1]), try inFormat(xs[2]))
    let out = try DNNLMemory.output(0, x.layout)
    var geometry = blocked_skip_geometry(xs[0].type.shape, pooled: xs[1].type.shape, g: xs[2].type.shape, pool, op.channels, tag.block)
    let pointers = UncheckedSendable((x.floats, dy.floats, g.floats, out.buffer.pointer.assumingMemoryBound(to: Float.self)))
    // Tasks of whole rows of cells (of one block of channels of one image).
    let rows = xs[0].type.shape[0] * geometry.blocks * geometry.cells_h
    withUnsafePointer(to: &geometry) { p in
      let shape = UncheckedSendable(p)
      Parallel.forEach(rows, grain: 1, align: 1) { rows in
        let (xp, dyp, gp, outp) = pointers.value
        blocked_skip_gradient_rows(-1, shape.value, rows.lowerBound, rows.count, xp, dyp, gp, outp, op.reluBackward ? 1 : 0)
      }
    }
    withExtendedLifetime((x, dy, g)) {}
    return try CPUStorage(out, role: .activation, type: output)
  }
}

// MARK: - Geometry

extension blocked_skip_geometry {
  /// The kernel's description of x [N,H,W,C], the pooled [N,OH,OW,C] and g [N,h,w,Cg] (the skip's
  /// channels from `channels` on) in a blocked format of `block` floats.
  init(_ x: Shape, pooled: Shape, g: Shape, _ pool: MaxPool2D, _ channels: Int, _ block: Int) {
    let window = CropWindow(crop: g, whole: x)
    let (sh, sw) = (pool.strideH, pool.strideW)
    self.init(
      h: x[1], w: x[2], oh: pooled[1], ow: pooled[2], gh: g[1], gw: g[2], kh: pool.windowH, kw: pool.windowW, sh: sh, sw: sw,
      top: window.top, left: window.left, block: block, blocks: x[3] / block, g_blocks: g[3] / block,
      g_first_block: channels / block, cells_h: (x[1] + sh - 1) / sh, cells_w: (x[2] + sw - 1) / sw)
  }
}

extension DNNLMemory {
  /// Its buffer's floats.
  fileprivate var floats: UnsafePointer<Float> { UnsafePointer(buffer.pointer.assumingMemoryBound(to: Float.self)) }
}
