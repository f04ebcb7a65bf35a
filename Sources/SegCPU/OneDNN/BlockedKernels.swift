import CDNNL
import Foundation
import SegCore

// MARK: - Ops on blocked activations

/// slice, zero pad, concat, add (a bias add with its ReLU when fused) and per-channel sum
/// (BlockedSum.swift) of 4-D f32 or bf16 activations held in a oneDNN channel-blocked layout
/// (nChw8c or nChw16c), done by oneDNN in that layout: a crop is a reorder from a window
/// (submemory) of its input, a pad a reorder into a window of a zeroed output, a concat a copy of
/// each input's blocks in turn, an add (of a like tensor or of a per-channel bias) oneDNN's binary
/// op. Each costs one pass and no row-major copy, and its output stays blocked for the convolution or the backward
/// op that reads it. Each returns nil where this does not apply (the Swift kernel then runs on
/// row-major copies).
enum BlockedKernels {
  /// slice: x [N,H,W,C] -> [sizes], when the channel window is whole blocks.
  static func slice(_ op: Slice, _ x: CPUStorage, _ output: TensorType) throws -> CPUStorage? {
    guard output.shape.count > 0, let (source, tag) = try blocked(x),
          let offsets = channelAligned(op.starts, op.sizes, x.type.shape, tag.block) else { return nil }
    let outLayout = try Layout(Layout.make(nchw(op.sizes), tag.format, output.dtype))
    let window = try submemory(source, dims: nchw(op.sizes), offsets: offsets)
    let out = try DNNLMemory.output(0, outLayout)
    try reorder(window, into: out)
    return try CPUStorage(out, role: .activation, type: output)
  }

  /// pad with zeros: x [N,H,W,C] -> [N,H+before+after,...], when the channel padding is whole blocks.
  static func pad(_ op: Pad, _ x: CPUStorage, _ output: TensorType) throws -> CPUStorage? {
    guard op.mode == .zero, x.type.shape.count > 0, let (source, tag) = try blocked(x),
          let offsets = channelAligned(op.before, x.type.shape.dims, output.shape, tag.block) else { return nil }
    let out = try DNNLMemory.output(0, Layout(Layout.make(nchw(output.shape.dims), tag.format, output.dtype)))
    memset(out.buffer.pointer, 0, out.buffer.byteCount)
    try reorder(source, into: submemory(out, dims: nchw(x.type.shape.dims), offsets: offsets))
    return try CPUStorage(out, role: .activation, type: output)
  }

  /// concat along the channels, when some input is blocked and every input's channels but the
  /// last's are whole blocks. In a channel-blocked layout each image's blocks follow one another,
  /// so the output is each image's bytes of each input in turn: copies, after reordering any input
  /// in another layout. (oneDNN's own concat ran 3-4 times slower here.)
  static func concat(_ op: Concat, _ xs: [CPUStorage], _ output: TensorType) throws -> CPUStorage? {
    guard op.axis == 3, output.shape.count > 0, xs.allSatisfy({ $0.type.shape.count > 0 && $0.type.dtype == output.dtype }),
          let tag = try xs.lazy.compactMap({ try blocked($0)?.tag }).first,
          xs.dropLast().allSatisfy({ $0.type.shape[3] % tag.block == 0 }) else { return nil }
    let sources = try xs.map { x in
      try x.memory(Layout(Layout.make(nchw(x.type.shape.dims), tag.format, x.type.dtype)), role: .activation)
    }
    let out = try DNNLMemory.output(0, Layout(Layout.make(nchw(output.shape.dims), tag.format, output.dtype)))
    let images = output.shape[0]
    var destination = out.buffer.pointer
    for image in 0..<images {
      for source in sources {
        let bytes = source.layout.byteCount / images
        // A compiled program's producers may have written this input in place already.
        if source.buffer.pointer + image * bytes != destination {
          copyBytes(from: source.buffer.pointer + image * bytes, to: destination, count: bytes)
        }
        destination += bytes
      }
    }
    return try CPUStorage(out, role: .activation, type: output)
  }

  /// add: a [N,H,W,C] tensor plus one of the same shape or a per-channel bias [C], either order,
  /// when some [N,H,W,C] operand is blocked; the output takes its layout. With `relu`, oneDNN's
  /// ReLU runs on each sum as a post-op of the same pass: a transposed conv's bias and ReLU, in f32
  /// (nil otherwise).
  static func add(_ a: CPUStorage, _ b: CPUStorage, _ output: TensorType, relu: Bool = false) throws -> CPUStorage? {
    guard output.shape.rank == 4, output.shape.count > 0, a.type.dtype == output.dtype, b.type.dtype == output.dtype else { return nil }
    let full = [a, b].filter { $0.type.shape == output.shape }
    guard let first = try full.lazy.compactMap({ try blocked($0) }).first else { return nil }
    // The ReLU post-op only in f32 and after a per-channel bias: oneDNN 2.6's add of like nChw8c
    // tensors with it wrote past its buffers (measured on AVX-512, f32 and bf16). Otherwise the
    // Swift loop runs the fused steps.
    if relu, output.dtype != .f32 || full.count != 1 { return nil }
    let channels = output.shape[3]
    func memory(_ x: CPUStorage) throws -> DNNLMemory? {
      if x.type.shape == output.shape {
        return try blocked(x)?.memory ?? x.memory(Layout.plain(x.type.shape, .activation, x.type.dtype), role: .activation)
      }
      // A bias seen as (1, C, 1, 1) in the blocked format, which is its row-major order when C is
      // whole blocks (oneDNN's broadcast from a plain (1, C, 1, 1) ran 20 times slower).
      guard x.type.shape.dims.last == channels, x.type.shape.count == channels, channels % first.tag.block == 0 else { return nil }
      return try DNNLMemory(Layout(Layout.make([1, channels, 1, 1], first.tag.format, x.type.dtype)), over: x.plainBuffer())
    }
    guard let ma = try memory(a), let mb = try memory(b) else { return nil }
    // oneDNN broadcasts only its second source; add commutes.
    let (src0, src1) = a.type.shape == output.shape ? (ma, mb) : (mb, ma)
    let outLayout = first.memory.layout
    let prim = try PrimitiveCache.get(PrimitiveKey("add", [relu ? 1 : 0], layouts: [src0.layout, src1.layout, outLayout])) {
      var desc = dnnl_binary_desc_t()
      var (s0, s1, d) = (src0.layout.md, src1.layout.md, outLayout.md)
      try check(dnnl_binary_desc_init(&desc, dnnl_binary_add, &s0, &s1, &d), "dnnl_binary_desc_init")
      let attr = try reluPostOpAttr(relu)
      defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
      return try DNNLPrimitive("binary add", opDesc: &desc, attr: attr)
    }
    let out = try DNNLMemory.output(0, outLayout)
    try prim.execute([(DNNL_ARG_SRC_0, src0), (DNNL_ARG_SRC_1, src1), (DNNL_ARG_DST, out)], "binary add")
    return try CPUStorage(out, role: .activation, type: output)
  }

  /// The fused add, or bias add then ReLU, of two inputs (what the compiler's elementwise fusion
  /// makes of a transposed conv's bias and ReLU): `add` with the ReLU as oneDNN's post-op, one pass
  /// in the blocked layout instead of the fused Swift loop's gather of the bias per element. nil
  /// for other steps, and where `add` declines.
  static func fusedAdd(_ op: FusedElementwise, _ xs: [CPUStorage], _ output: TensorType) throws -> CPUStorage? {
    guard let first = op.steps.first, op.steps.count <= 2, first.type == output, case .binary(let b) = first.op, b.function == .add,
      case .input(let i) = first.operands[0], case .input(let j) = first.operands[1] else { return nil }
    if op.steps.count == 2 {
      guard case .relu = op.steps[1].op, case .step(0) = op.steps[1].operands[0] else { return nil }
    }
    return try add(xs[i], xs[j], output, relu: op.steps.count == 2)
  }

  /// Whether `out`, a concat of `xs` along the channels just made by `concat`, is their bytes one
  /// after another: one image, every tensor made in the same channel-blocked format, every channel
  /// count whole blocks (so the output has no padding to zero).
  static func concatenatesContiguously(_ xs: [CPUStorage], into out: CPUStorage) -> Bool {
    guard blockable(out.type.dtype), out.type.shape.rank == 4, out.type.shape[0] == 1, out.madeLayout != nil else { return false }
    for tag in [BlockedFormat(format: dnnl_aBcd8b, block: 8), BlockedFormat(format: dnnl_aBcd16b, block: 16)] {
      func isMade(_ x: CPUStorage) -> Bool {
        x.type.dtype == out.type.dtype && x.type.shape.rank == 4 && x.type.shape[3] % tag.block == 0
          && (try? Layout(Layout.make(nchw(x.type.shape.dims), tag.format, x.type.dtype))) == x.madeLayout
      }
      if isMade(out) { return xs.allSatisfy(isMade) }
    }
    return false
  }

  // MARK: Helpers

  /// The dtypes oneDNN holds blocked activations in here: f32, and bf16 (the CPU's bf16 convolutions).
  private static func blockable(_ dtype: DType) -> Bool { dtype == .f32 || dtype == .bf16 }

  /// A channel-blocked format and its block size.
  struct BlockedFormat {
    let format: dnnl_format_tag_t
    let block: Int
  }

  /// `x`'s memory in its blocked layout and that layout's format, when it has no row-major copy
  /// and its layout is nChw8c or nChw16c.
  static func blocked(_ x: CPUStorage) throws -> (memory: DNNLMemory, tag: BlockedFormat)? {
    guard blockable(x.type.dtype), x.type.shape.rank == 4, let layout = x.blockedLayout(.activation) else { return nil }
    let dims = nchw(x.type.shape.dims)
    for tag in [BlockedFormat(format: dnnl_aBcd8b, block: 8), BlockedFormat(format: dnnl_aBcd16b, block: 16)]
    where try Layout(Layout.make(dims, tag.format, x.type.dtype)) == layout {
      return (try x.memory(layout, role: .activation), tag)
    }
    return nil
  }

  /// The window's offsets in oneDNN's (N,C,H,W) order, when its channel start is a whole number of
  /// blocks and it ends on a block or at the last channel of `whole` (NHWC dims of the tensor the
  /// window lies in); nil otherwise.
  private static func channelAligned(_ starts: [Int], _ sizes: [Int], _ whole: Shape, _ block: Int) -> [Int]? {
    let (start, size) = (starts[3], sizes[3])
    guard start % block == 0, size % block == 0 || start + size == whole[3] else { return nil }
    return nchw(starts)
  }

  /// A memory over `parent`'s buffer that sees the window of `dims` at `offsets` (N,C,H,W).
  private static func submemory(_ parent: DNNLMemory, dims: [Int], offsets: [Int]) throws -> DNNLMemory {
    var md = dnnl_memory_desc_t()
    var parentMD = parent.layout.md
    let (d, o) = (dims.map(Int64.init), offsets.map(Int64.init))
    try check(dnnl_memory_desc_init_submemory(&md, &parentMD, d, o), "dnnl_memory_desc_init_submemory")
    return try DNNLMemory(Layout(md), over: parent.buffer)
  }

  /// NHWC values in oneDNN's (N,C,H,W) order.
  private static func nchw(_ v: [Int]) -> [Int] { [v[0], v[3], v[1], v[2]] }
}

// MARK: - Blocked tensors for tests

extension CPUBackend {
  /// `host` (a non-empty rank-4 f32 or bf16 tensor) held only in oneDNN's channel-blocked layout
  /// nChw8c (or nChw16c with `block` 16), as a convolution leaves its output: how a test gives the
  /// blocked kernels their operands without running a convolution first.
  func uploadBlocked(_ host: HostTensor, block: Int = 8) throws -> any DeviceStorage {
    guard host.dtype == .f32 || host.dtype == .bf16, host.shape.rank == 4, host.shape.count > 0, block == 8 || block == 16 else {
      throw TensorError(
        op: "uploadBlocked", operands: [host.type], "a blocked layout needs a non-empty rank-4 f32 or bf16 tensor and a block of 8 or 16")
    }
    let plain = try Self.cpuStorage(upload(host), op: "uploadBlocked")
    return try withDNNLErrors(op: "uploadBlocked", [host.type]) {
      let layout = try Layout(Layout.make(Layout.oneDNNDims(host.shape, .activation), block == 16 ? dnnl_aBcd16b : dnnl_aBcd8b, host.dtype))
      return try CPUStorage(plain.memory(layout, role: .activation), role: .activation, type: host.type)
    }
  }
}
