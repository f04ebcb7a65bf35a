import SegCore

// MARK: - Sum kernel

/// sum over any axes in f32 or f64. The input is seen as alternating groups of kept and reduced
/// axes; each pass removes the innermost reduced group, [K1, R, K2] -> [K1, K2], so the common
/// cases are one pass: all axes ([R]), NHWC's leading axes for a bias gradient ([R, C]), the last
/// axis ([K, R]) and the spatial axes ([N, R, C]).
///
/// Determinism: R is cut into blocks whose size depends only on the shape; each block is summed in
/// `T` with a fixed order, and the blocks' sums are added in Double in block order. Threads only
/// decide which block runs where, so the bits do not depend on the thread count.
func sumKernel(_ op: Sum, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  let kind = try floatKind(op, inputs, output)
  let axes = Set(op.axes)
  let shape = inputs[0].type.shape
  switch kind {
  case .f32: sum(inputs[0].elements(Float.self), shape, axes, output.elements(Float.self))
  case .f64: sum(inputs[0].elements(Double.self), shape, axes, output.elements(Double.self))
  }
}

/// Sums `x` of `shape` over `axes` into `out` (row-major over the kept axes).
func sum<T: KernelFloat>(_ x: UnsafePointer<T>, _ shape: Shape, _ axes: Set<Int>, _ out: UnsafeMutablePointer<T>) {
  let outCount = shape.dims.enumerated().filter { !axes.contains($0.offset) }.map(\.element).reduce(1, *)
  guard outCount > 0 else { return }
  guard shape.count > 0 else {
    out.initialize(repeating: 0, count: outCount)
    return
  }
  // Merged groups, alternating kept / reduced; axes of size 1 are neither.
  var dims: [Int] = [], reduced: [Bool] = []
  for (d, n) in shape.dims.enumerated() where n != 1 {
    let r = axes.contains(d)
    if reduced.last == r {
      dims[dims.count - 1] *= n
    } else {
      dims.append(n)
      reduced.append(r)
    }
  }
  guard reduced.contains(true) else {
    out.update(from: x, count: outCount)
    return
  }
  var source = x
  var scratch: UnsafeMutablePointer<T>? = nil
  while let j = reduced.lastIndex(of: true) {
    let k1 = dims[..<j].reduce(1, *), r = dims[j], k2 = dims[(j + 1)...].reduce(1, *)
    let last = !reduced[..<j].contains(true)
    let target = last ? out : UnsafeMutablePointer<T>.allocate(capacity: k1 * k2)
    reduceMiddle(source, k1, r, k2, target)
    scratch?.deallocate()
    scratch = last ? nil : target
    source = UnsafePointer(target)
    // The kept group after j joins the kept group before it.
    if j > 0 {
      dims = Array(dims[..<j])
      dims[j - 1] *= k2
      reduced = Array(reduced[..<j])
    } else {
      (dims, reduced) = ([k2], [false])
    }
  }
}

// MARK: - One pass

/// Elements one block of a reduction sums before its result is set aside.
let reductionBlock = 1 << 14

/// out[i, c] = sum over j of x[i, j, c] for x of shape [k1, r, k2], row-major.
func reduceMiddle<T: KernelFloat>(_ x: UnsafePointer<T>, _ k1: Int, _ r: Int, _ k2: Int, _ out: UnsafeMutablePointer<T>) {
  if k2 == 1 { return reduceRows(x, k1, r, out) }
  // Tasks are (output row i, block of rows b, tile of columns); a tile stays in L1.
  let width = min(k2, 1024)
  let tiles = (k2 + width - 1) / width
  let rowsPerBlock = min(512, max(1, reductionBlock / width))
  let blocks = (r + rowsPerBlock - 1) / rowsPerBlock
  let partial = blocks == 1 ? out : UnsafeMutablePointer<T>.allocate(capacity: k1 * blocks * k2)
  defer { if blocks > 1 { partial.deallocate() } }
  Parallel.forEachTask(k1 * blocks * tiles, cost: rowsPerBlock * width) { t in
    let tile = t % tiles, b = (t / tiles) % blocks, i = t / (tiles * blocks)
    let c0 = tile * width, w = min(width, k2 - c0)
    let j0 = b * rowsPerBlock, j1 = min(r, j0 + rowsPerBlock)
    let acc = partial + (i * blocks + b) * k2 + c0
    let src = x + i * r * k2 + c0
    acc.update(from: src + j0 * k2, count: w)
    for j in (j0 + 1)..<max(j0 + 1, j1) { acc.add(src + j * k2, count: w) }
  }
  guard blocks > 1 else { return }
  Parallel.forEach(k1 * k2, grain: max(1, Parallel.defaultGrain / blocks)) { range in
    for o in range {
      let i = o / k2, c = o % k2
      var s = 0.0
      for b in 0..<blocks { s += Double(partial[(i * blocks + b) * k2 + c]) }
      out[o] = T(s)
    }
  }
}

/// out[i] = sum of the contiguous row x[i*r ..< (i+1)*r], for i in 0..<k1.
func reduceRows<T: KernelFloat>(_ x: UnsafePointer<T>, _ k1: Int, _ r: Int, _ out: UnsafeMutablePointer<T>) {
  let blocks = (r + reductionBlock - 1) / reductionBlock
  if blocks == 1 {
    Parallel.forEachTask(k1, cost: r) { i in out[i] = T(contiguousSum(x + i * r, r)) }
    return
  }
  let partial = UnsafeMutablePointer<Double>.allocate(capacity: k1 * blocks)
  defer { partial.deallocate() }
  Parallel.forEachTask(k1 * blocks, cost: reductionBlock) { t in
    let i = t / blocks, b = t % blocks
    let start = b * reductionBlock
    partial[t] = contiguousSum(x + i * r + start, min(reductionBlock, r - start))
  }
  for i in 0..<k1 {
    var s = 0.0
    for b in 0..<blocks { s += partial[i * blocks + b] }
    out[i] = T(s)
  }
}

/// The sum of n contiguous elements: four vector accumulators in `T` (for instruction-level
/// parallelism), their lanes and the tail added in Double, always in the same order.
@inline(__always)
func contiguousSum<T: KernelFloat>(_ x: UnsafePointer<T>, _ n: Int) -> Double {
  var a0 = Vec<T>(), a1 = Vec<T>(), a2 = Vec<T>(), a3 = Vec<T>()
  var i = 0
  while i + 32 <= n {
    a0 += x.vector(at: i)
    a1 += x.vector(at: i + 8)
    a2 += x.vector(at: i + 16)
    a3 += x.vector(at: i + 24)
    i += 32
  }
  while i + 8 <= n {
    a0 += x.vector(at: i)
    i += 8
  }
  let v = (a0 + a1) + (a2 + a3)
  var s = 0.0
  for l in v.indices { s += Double(v[l]) }
  while i < n {
    s += Double(x[i])
    i += 1
  }
  return s
}
