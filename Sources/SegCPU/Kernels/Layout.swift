import SegCore

// MARK: - Block operations

/// Copies a block of `sizes` from `src` (shape `srcShape`, at `srcStarts`) to `dst` (shape
/// `dstShape`, at `dstStarts`); elements are moved as bytes of `elementSize`. The two may be the
/// same buffer when the blocks do not overlap.
func copyBlock(
  _ elementSize: Int, sizes: [Int], src: UnsafeRawPointer, _ srcShape: Shape, at srcStarts: [Int],
  dst: UnsafeMutableRawPointer, _ dstShape: Shape, at dstStarts: [Int]
) {
  Runs.forEachBlockRun(sizes: sizes, dst: dstShape, dstStarts: dstStarts, src: srcShape, srcStarts: srcStarts) {
    d, s, n in
    (dst + d * elementSize).copyMemory(from: src + s * elementSize, byteCount: n * elementSize)
  }
}

/// Sets a block of `sizes` at `starts` in `dst` (shape `shape`) to zero bytes (0 in every dtype).
func zeroBlock(_ elementSize: Int, sizes: [Int], dst: UnsafeMutableRawPointer, _ shape: Shape, at starts: [Int]) {
  Runs.forEachBlockRun(sizes: sizes, dst: shape, dstStarts: starts, src: shape, srcStarts: starts) { d, _, n in
    (dst + d * elementSize).initializeMemory(as: UInt8.self, repeating: 0, count: n * elementSize)
  }
}

/// Adds the block of `sizes` at `srcStarts` into the one at `dstStarts`, both in `x` of `shape`
/// (the blocks must not overlap).
func addBlock<T: KernelFloat>(_ x: UnsafeMutablePointer<T>, _ shape: Shape, sizes: [Int], from srcStarts: [Int], to dstStarts: [Int]) {
  Runs.forEachBlockRun(sizes: sizes, dst: shape, dstStarts: dstStarts, src: shape, srcStarts: srcStarts) {
    d, s, n in (x + d).add(UnsafePointer(x + s), count: n)
  }
}

// MARK: - Concat and slice

/// concat along any axis, any dtype: each input is a block of the output.
func concatKernel(_ op: Concat, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  let axis = op.axis
  let out = output.type.shape
  try expectLayoutDType(op, inputs, output)
  let zeros = [Int](repeating: 0, count: out.rank)
  var starts = [Int](repeating: 0, count: out.rank)
  for x in inputs {
    copyBlock(
      output.type.dtype.byteSize, sizes: x.type.shape.dims, src: x.pointer, x.type.shape, at: zeros,
      dst: output.pointer, out, at: starts)
    starts[axis] += x.type.shape.dims[axis]
  }
}

/// slice, any dtype: the block of the input at `starts`.
func sliceKernel(_ op: Slice, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  try expectLayoutDType(op, inputs, output)
  let out = output.type.shape
  copyBlock(
    output.type.dtype.byteSize, sizes: op.sizes, src: inputs[0].pointer, inputs[0].type.shape, at: op.starts,
    dst: output.pointer, out, at: [Int](repeating: 0, count: out.rank))
}

/// The layout kernels move any dtype, but never convert: inputs and output share one.
func expectLayoutDType<P: Primitive>(_ op: P, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  guard inputs.allSatisfy({ $0.type.dtype == output.type.dtype }) else {
    throw TensorError(
      op: op.kind.rawValue, operands: inputs.map(\.type), "the CPU kernel needs operands of the output's dtype")
  }
}

// MARK: - Padding

/// The border slabs of a padded tensor, axis by axis: for axis d, each padded index j along d over
/// the region that is already complete (the padded extent on axes before d, the interior on axes
/// after d), with the interior index it reflects (nil outside the interior for zero padding, and
/// for j inside it). Filling the slabs in this order fills every border element exactly once, and
/// reflecting each axis in turn gives each element the per-axis reflection of the reference.
func borderSlabs(interior: Shape, before: [Int], after: [Int])
  -> [(starts: [Int], sizes: [Int], axis: Int, mirror: Int)]
{
  let rank = interior.rank
  var slabs: [(starts: [Int], sizes: [Int], axis: Int, mirror: Int)] = []
  for d in 0..<rank {
    let n = interior.dims[d]
    var starts = before, sizes = interior.dims
    for e in 0..<d {
      starts[e] = 0
      sizes[e] = before[e] + interior.dims[e] + after[e]
    }
    sizes[d] = 1
    let border = Array(0..<before[d]) + Array((before[d] + n)..<(before[d] + n + after[d]))
    for j in border {
      let i = j - before[d]
      let mirrored = i < 0 ? -i : 2 * (n - 1) - i
      starts[d] = j
      slabs.append((starts, sizes, d, mirrored + before[d]))
    }
  }
  return slabs
}

/// pad with zeros or by reflection, any dtype: the interior is copied, then the border slabs are
/// zeroed or copied from the slabs they mirror, axis by axis.
func padKernel(_ op: Pad, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  try expectLayoutDType(op, inputs, output)
  let x = inputs[0].type.shape, out = output.type.shape, size = output.type.dtype.byteSize
  guard out.count > 0 else { return }
  copyBlock(
    size, sizes: x.dims, src: inputs[0].pointer, x, at: [Int](repeating: 0, count: x.rank),
    dst: output.pointer, out, at: op.before)
  for slab in borderSlabs(interior: x, before: op.before, after: op.after) {
    if op.mode == .zero || x.dims[slab.axis] == 0 {
      zeroBlock(size, sizes: slab.sizes, dst: output.pointer, out, at: slab.starts)
    } else {
      var from = slab.starts
      from[slab.axis] = slab.mirror
      copyBlock(
        size, sizes: slab.sizes, src: UnsafeRawPointer(output.pointer), out, at: from, dst: output.pointer, out,
        at: slab.starts)
    }
  }
}

/// padBackward (the adjoint of reflect padding), f32 or f64: in a copy of the gradient, the slabs
/// are folded back onto the slabs they mirror in the reverse of pad's order; the interior is the
/// result.
func padBackwardKernel(_ op: PadBackward, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  let kind = try floatKind(op, inputs, output)
  let g = inputs[0].type.shape, interior = output.type.shape
  func run<T: KernelFloat>(_: T.Type) {
    let scratch = UnsafeMutablePointer<T>.allocate(capacity: max(g.count, 1))
    defer { scratch.deallocate() }
    copyBytes(from: inputs[0].pointer, to: UnsafeMutableRawPointer(scratch), count: g.count * MemoryLayout<T>.stride)
    for slab in borderSlabs(interior: interior, before: op.before, after: op.after).reversed() {
      var to = slab.starts
      to[slab.axis] = slab.mirror
      addBlock(scratch, g, sizes: slab.sizes, from: slab.starts, to: to)
    }
    copyBlock(
      MemoryLayout<T>.stride, sizes: interior.dims, src: UnsafeRawPointer(scratch), g, at: op.before,
      dst: output.pointer, interior, at: [Int](repeating: 0, count: g.rank))
  }
  switch kind {
  case .f32: run(Float.self)
  case .f64: run(Double.self)
  }
}
