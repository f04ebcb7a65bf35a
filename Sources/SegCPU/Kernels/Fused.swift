import CDNNL
import SegCore

// MARK: - Fused elementwise on the CPU

/// `fusedElementwise` in one pass over memory: the output is cut into tiles that stay in the L1
/// cache, and each tile runs the steps in turn with the same SIMD functions as the unfused Swift
/// kernels (Elementwise.swift), so a fused chain rounds as its ops do one by one and reads each
/// input and writes the output once. f32 only; operands of the output's shape, per-channel ([C],
/// or [1,...,1,C]) or single values; in the layout of the full-size operands when they are in one
/// channel-blocked oneDNN layout (a transposed conv's output needs no reorder for its bias and
/// ReLU), else row-major. Anything else is declined (nil), and the "swift" candidate then runs the
/// steps with the backend's own kernels (`FusedElementwise.runSteps`).
enum FusedKernel {
  /// Elements per tile: steps' scratch tiles of this many floats stay in L1.
  static let tile = 512

  /// One step on one tile: out[k] = f(a[k], b[k]) for k in 0..<n (b unused by unary steps).
  typealias TileFunction = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void

  /// How the kernel reads one input.
  enum InputKind {
    case full
    case channel
    case scalar
  }

  static func run(_ op: FusedElementwise, _ inputs: [Operand], _ output: TensorType) throws -> (any DeviceStorage)? {
    guard output.dtype == .f32, output.shape.count > 0,
      inputs.allSatisfy({ $0.type.dtype == .f32 }), op.steps.allSatisfy({ $0.type == output }),
      let functions = unwrapAll(op.steps.map(tileFunction))
    else { return nil }
    let channels = output.shape.dims.last ?? 1
    let kinds = inputs.map { x -> InputKind? in
      if x.type.shape == output.shape { return .full }
      if x.type.shape.count == 1 { return .scalar }
      if x.type.shape.rank <= output.shape.rank, x.type.shape.dims.last == channels, x.type.shape.count == channels { return .channel }
      return nil
    }
    guard let kinds = unwrapAll(kinds) else { return nil }
    let storages = try inputs.map { try CPUBackend.cpuStorage($0.storage, op: "fusedElementwise") }

    // The output's layout is the one the unfused ops would have made (the next ops' arithmetic,
    // a reduction's order say, may depend on it); a blocked layout with padding is left to the
    // steps one by one.
    var blocked: (layout: Layout, block: Int)?
    if let layout = try eagerLayout(op, storages, kinds) {
      guard let b = try blockedFormat(layout, output.shape) else { return nil }
      blocked = (layout, b)
    }
    var keep: [AnyObject] = []
    var pointers: [UnsafePointer<Float>] = []
    for (x, kind) in zip(storages, kinds) {
      let buffer: HostBuffer
      if kind == .full, let blocked {
        buffer = try withDNNLErrors(op: "fusedElementwise", inputs.map(\.type)) { try x.memory(blocked.layout, role: .activation).buffer }
      } else {
        buffer = try withDNNLErrors(op: "fusedElementwise", inputs.map(\.type)) { try x.plainBuffer() }
      }
      keep.append(buffer)
      pointers.append(UnsafePointer(buffer.pointer.assumingMemoryBound(to: Float.self)))
    }
    let result: CPUStorage
    let out: UnsafeMutablePointer<Float>
    if let blocked {
      let memory = try withDNNLErrors(op: "fusedElementwise", inputs.map(\.type)) { try DNNLMemory.output(0, blocked.layout) }
      out = memory.buffer.pointer.assumingMemoryBound(to: Float.self)
      result = try CPUStorage(memory, role: .activation, type: output)
    } else {
      let buffer = HostBuffer.output(0, byteCount: output.shape.count * 4)
      out = buffer.pointer.assumingMemoryBound(to: Float.self)
      result = CPUStorage(plain: buffer, type: output)
    }
    let dims = output.shape.dims
    let channelOrder = ChannelOrder(
      channels: channels, block: blocked?.block, spatial: dims.count == 4 ? dims[1] * dims[2] : 1)
    withExtendedLifetime(keep) {
      evaluate(op, functions, kinds, pointers, out, count: output.shape.count, channelOrder)
    }
    return result
  }

  // MARK: The loop

  /// Runs the steps tile by tile over `count` elements, split across threads.
  private static func evaluate(
    _ op: FusedElementwise, _ functions: [TileFunction], _ kinds: [InputKind], _ inputs: [UnsafePointer<Float>],
    _ out: UnsafeMutablePointer<Float>, count: Int, _ order: ChannelOrder
  ) {
    let steps = op.steps
    let small = kinds.indices.filter { kinds[$0] != .full }
    // Scratch slot of each small input and each step but the last (which writes the output).
    var slot = [Int](repeating: -1, count: kinds.count)
    for (k, i) in small.enumerated() { slot[i] = k }
    let slots = small.count + steps.count
    Parallel.forEach(count, grain: Parallel.defaultGrain / max(1, steps.count), align: tile) { range in
      withUnsafeTemporaryAllocation(of: Float.self, capacity: slots * tile) { scratch in
        let base = scratch.baseAddress!
        var start = range.lowerBound
        while start < range.upperBound {
          let n = min(tile, range.upperBound - start)
          for i in small {
            let into = base + slot[i] * tile
            if kinds[i] == .scalar {
              into.initialize(repeating: inputs[i][0], count: n)
            } else {
              order.gather(inputs[i], into: into, from: start, count: n)
            }
          }
          func pointer(_ s: FusedElementwise.Source) -> UnsafePointer<Float> {
            switch s {
            case .input(let i): return kinds[i] == .full ? inputs[i] + start : UnsafePointer(base + slot[i] * tile)
            case .step(let j): return UnsafePointer(base + (small.count + j) * tile)
            }
          }
          for (j, step) in steps.enumerated() {
            let a = pointer(step.operands[0])
            let b = step.operands.count > 1 ? pointer(step.operands[1]) : a
            let into = j == steps.count - 1 ? out + start : base + (small.count + j) * tile
            functions[j](a, b, into, n)
          }
          start += n
        }
      }
    }
  }

  // MARK: Steps

  /// The tile function of `step`'s op, from the unfused kernels' functions; nil for a cast.
  private static func tileFunction(_ step: FusedElementwise.Step) -> TileFunction? {
    switch step.op {
    case .unary(let u):
      switch u.function {
      case .neg: return unary(NegFunction<Float>())
      case .exp: return unary(ExpFunction<Float>())
      case .log: return unary(LogFunction<Float>())
      case .sqrt: return unary(SqrtFunction<Float>())
      case .addScalar(let c): return unary(AddScalarFunction(c: Float(c)))
      case .mulScalar(let c): return unary(MulScalarFunction(c: Float(c)))
      }
    case .binary(let b):
      switch b.function {
      case .add: return binary(AddFunction<Float>())
      case .sub: return binary(SubFunction<Float>())
      case .mul: return binary(MulFunction<Float>())
      case .div: return binary(DivFunction<Float>())
      }
    case .relu: return unary(ReLUFunction<Float>())
    case .reluBackward: return binary(OneDNNReLUBackward())
    case .cast: return nil
    }
  }

  private static func unary<F: UnaryFunction>(_ f: F) -> TileFunction where F.T == Float {
    { a, _, o, n in
      var i = 0
      if F.vectorised {
        while i + 8 <= n {
          o.store(f(a.vector(at: i)), at: i)
          i += 8
        }
      }
      while i < n {
        o[i] = f(a[i])
        i += 1
      }
    }
  }

  private static func binary<F: BinaryFunction>(_ f: F) -> TileFunction where F.T == Float {
    { a, b, o, n in
      var i = 0
      while i + 8 <= n {
        o.store(f(a.vector(at: i), b.vector(at: i)), at: i)
        i += 8
      }
      while i < n {
        o[i] = f(a[i], b[i])
        i += 1
      }
    }
  }

  // MARK: Layouts

  /// The blocked layout the unfused ops would have made the output in, or nil for row-major:
  /// the CPU's blocked add keeps its first blocked full-size operand's layout when the other is
  /// full-size or a per-channel row of whole blocks, oneDNN's ReLU and its backward keep their
  /// first blocked operand's layout, and the Swift kernels (every other step) write row-major.
  private static func eagerLayout(_ op: FusedElementwise, _ inputs: [CPUStorage], _ kinds: [InputKind]) throws -> Layout? {
    let shape = op.steps.last!.type.shape
    guard shape.rank == 4 else { return nil }
    var made: [Layout?] = []
    func layout(_ s: FusedElementwise.Source) -> Layout? {
      switch s {
      case .input(let i): return kinds[i] == .full ? inputs[i].blockedLayout(.activation) : nil
      case .step(let j): return made[j]
      }
    }
    func isFull(_ s: FusedElementwise.Source) -> Bool {
      if case .input(let i) = s { return kinds[i] == .full }
      return true
    }
    for step in op.steps {
      switch step.op {
      case .binary(let b) where b.function == .add:
        let first = step.operands.filter(isFull).lazy.compactMap(layout).first
        var result = first
        if let first, let block = try blockedFormat(first, shape, padded: true) {
          for s in step.operands where !isFull(s) {
            if case .input(let i) = s, kinds[i] == .channel, shape[3] % block == 0 { continue }
            result = nil
          }
        } else {
          result = nil
        }
        made.append(result)
      case .relu, .reluBackward: made.append(step.operands.lazy.compactMap(layout).first)
      default: made.append(nil)
      }
    }
    return made.last!
  }

  /// The block of `layout` when it is nChw8c or nChw16c for `shape` (NHWC) with no padding (or
  /// with, when `padded`); nil otherwise.
  private static func blockedFormat(_ layout: Layout, _ shape: Shape, padded: Bool = false) throws -> Int? {
    let d = shape.dims
    let nchw = [d[0], d[3], d[1], d[2]]
    for (tag, block) in [(dnnl_aBcd8b, 8), (dnnl_aBcd16b, 16)] where padded || d[3] % block == 0 {
      if try Layout(Layout.make(nchw, tag)) == layout { return block }
    }
    return nil
  }
}

// MARK: - ReLU's backward as the unfused f32 kernel computes it

/// ReLU's backward as oneDNN's eltwise kernel, which runs every unfused f32 one on the CPU,
/// computes it from the output: dy * 0 where y <= 0 (a negative dy gives -0, where the Swift
/// kernel and the reference give 0), so that the fused loop keeps the unfused bits.
struct OneDNNReLUBackward: BinaryFunction {
  @inline(__always) func callAsFunction(_ dy: Float, _ y: Float) -> Float { y > 0 ? dy : dy * 0 }
  @inline(__always) func callAsFunction(_ dy: Vec<Float>, _ y: Vec<Float>) -> Vec<Float> {
    (dy * 0).replacing(with: dy, where: y .> 0)
  }
}

/// Which channel each element of the output holds, in its layout: row-major NHWC (channel
/// fastest) or channel-blocked (N, C/b, H, W, b).
struct ChannelOrder {
  let channels: Int
  /// The channel block, nil for row-major.
  let block: Int?
  /// H*W.
  let spatial: Int

  /// into[k] = values[channel of element start + k] for k in 0..<count.
  func gather(_ values: UnsafePointer<Float>, into: UnsafeMutablePointer<Float>, from start: Int, count: Int) {
    guard let b = block else {
      var c = start % channels
      for k in 0..<count {
        into[k] = values[c]
        c += 1
        if c == channels { c = 0 }
      }
      return
    }
    let blocks = channels / b
    var lane = start % b, s = (start / b) % spatial, blk = (start / (b * spatial)) % blocks
    for k in 0..<count {
      into[k] = values[blk * b + lane]
      lane += 1
      if lane == b {
        lane = 0
        s += 1
        if s == spatial {
          s = 0
          blk += 1
          if blk == blocks { blk = 0 }
        }
      }
    }
  }
}

/// The elements unwrapped, or nil when one is nil.
private func unwrapAll<T>(_ xs: [T?]) -> [T]? {
  var out: [T] = []
  for x in xs {
    guard let x else { return nil }
    out.append(x)
  }
  return out
}
