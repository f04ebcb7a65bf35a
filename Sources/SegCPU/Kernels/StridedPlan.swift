import SegCore

// MARK: - Broadcast layouts

/// How up to two row-major inputs broadcast to a row-major output, simplified: output axes of size
/// 1 are dropped and neighbouring axes along which every input either varies or is repeated are
/// merged. After merging, the innermost axis of each input has stride 1 or 0, so kernels run
/// whole rows with a SIMD loop (a bias [C] over NHWC becomes [N*H*W, C] with strides [0, 1]).
struct StridedPlan {
  /// Merged output dimensions (empty for one element).
  let dims: [Int]
  /// Per input, its element stride along each merged axis (0 where it is repeated).
  let strides: [[Int]]

  /// The plan for `inputs` broadcast (NumPy rules, already checked) to `output`.
  init(broadcasting inputs: [Shape], to output: Shape) {
    var dims: [Int] = []
    var varies: [[Bool]] = []  // per merged axis, per input
    let rank = output.rank
    for d in 0..<rank where output.dims[d] != 1 {
      let status = inputs.map { s -> Bool in
        let i = d - (rank - s.rank)
        return i >= 0 && s.dims[i] != 1
      }
      if let last = varies.last, last == status {
        dims[dims.count - 1] *= output.dims[d]
      } else {
        dims.append(output.dims[d])
        varies.append(status)
      }
    }
    self.dims = dims
    // An input's memory is row-major over the axes along which it varies.
    strides = inputs.indices.map { k in
      var s = [Int](repeating: 0, count: dims.count)
      var acc = 1
      for d in stride(from: dims.count - 1, through: 0, by: -1) where varies[d][k] {
        s[d] = acc
        acc *= dims[d]
      }
      return s
    }
  }

  /// Elements of the output.
  var count: Int { dims.reduce(1, *) }

  /// Input `k`'s stride along the innermost axis: 1 (contiguous) or 0 (one repeated element).
  func innerStride(_ k: Int) -> Int { dims.isEmpty ? 0 : strides[k][dims.count - 1] }

  // MARK: - Running rows

  /// Calls `body(out, in0, in1, n)` for runs of `n` consecutive output elements starting at output
  /// offset `out`, where input k's elements start at offset `ink` and advance by `innerStride(k)`.
  /// Runs are cut from the innermost axis and handed out to threads; they never overlap.
  func forEachRun(_ body: (_ out: Int, _ in0: Int, _ in1: Int, _ n: Int) -> Void) {
    guard let n = dims.last else { return body(0, 0, 0, 1) }
    let outer = Array(dims.dropLast())
    let zeros = [Int](repeating: 0, count: dims.count)
    let s0 = strides[0], s1 = strides.count > 1 ? strides[1] : zeros
    Runs.forEach(
      outer: outer, strides: (Shape(outer).strides.map { $0 * n }, Array(s0.dropLast()), Array(s1.dropLast())),
      steps: (1, innerStride(0), strides.count > 1 ? innerStride(1) : 0), length: n, body)
  }
}

// MARK: - Runs of a loop nest

/// Parallel loops over the innermost runs of a nest of strided axes, for up to three operands.
enum Runs {
  /// At most this many elements go to one call of a run body, so that long rows still split.
  static let maxRun = 1 << 14

  /// Calls `body(a, b, c, n)` for runs of `n` elements: over the multi-index of the `outer` axes,
  /// operand k starts at the sum of index times its `strides` (plus its `bases`) and advances by
  /// its `steps` entry along the run of `length` elements, cut in pieces of at most `maxRun`.
  /// Each run is handed to exactly one thread; the order of runs within a thread is row-major.
  static func forEach(
    outer: [Int], strides: ([Int], [Int], [Int]), steps: (Int, Int, Int), bases: (Int, Int, Int) = (0, 0, 0),
    length n: Int, _ body: (_ a: Int, _ b: Int, _ c: Int, _ n: Int) -> Void
  ) {
    let rows = outer.reduce(1, *)
    guard n > 0, rows > 0 else { return }
    let (sa, sb, sc) = strides
    let run = min(n, maxRun)
    let perRow = (n + run - 1) / run
    Parallel.forEach(rows * perRow, grain: max(1, Parallel.defaultGrain / run), align: 1) { tasks in
      var row = tasks.lowerBound / perRow
      var piece = tasks.lowerBound % perRow
      // The row's multi-index over the outer axes, and each operand's offset there.
      var idx = [Int](repeating: 0, count: outer.count)
      var rest = row
      var (a, b, c) = bases
      for d in stride(from: outer.count - 1, through: 0, by: -1) {
        idx[d] = rest % outer[d]
        rest /= outer[d]
        a += idx[d] * sa[d]
        b += idx[d] * sb[d]
        c += idx[d] * sc[d]
      }
      for _ in tasks {
        let start = piece * run
        body(a + start * steps.0, b + start * steps.1, c + start * steps.2, min(run, n - start))
        piece += 1
        guard piece == perRow else { continue }
        piece = 0
        row += 1
        // Odometer over the outer axes, keeping the offsets in step.
        var d = outer.count - 1
        while d >= 0 {
          idx[d] += 1
          a += sa[d]
          b += sb[d]
          c += sc[d]
          if idx[d] < outer[d] { break }
          a -= sa[d] * idx[d]
          b -= sb[d] * idx[d]
          c -= sc[d] * idx[d]
          idx[d] = 0
          d -= 1
        }
      }
    }
  }

  /// Calls `body(dst, src, n)` for the contiguous runs of a block of extent `sizes` that starts at
  /// `dstStarts` in a row-major tensor of shape `dst` and at `srcStarts` in one of shape `src`
  /// (offsets in elements). Trailing axes that the block spans fully in both are merged into runs.
  static func forEachBlockRun(
    sizes: [Int], dst: Shape, dstStarts: [Int], src: Shape, srcStarts: [Int],
    _ body: (_ dst: Int, _ src: Int, _ n: Int) -> Void
  ) {
    guard sizes.allSatisfy({ $0 > 0 }) else { return }
    let rank = sizes.count
    guard rank > 0 else { return body(0, 0, 1) }
    var inner = rank - 1
    while inner > 0 && sizes[inner] == src.dims[inner] && sizes[inner] == dst.dims[inner] { inner -= 1 }
    let ds = dst.strides, ss = src.strides
    let dBase = (0..<rank).reduce(0) { $0 + dstStarts[$1] * ds[$1] }
    let sBase = (0..<rank).reduce(0) { $0 + srcStarts[$1] * ss[$1] }
    let outer = Array(sizes[..<inner])
    forEach(
      outer: outer, strides: (Array(ds[..<inner]), Array(ss[..<inner]), [Int](repeating: 0, count: inner)),
      steps: (1, 1, 0), bases: (dBase, sBase, 0), length: sizes[inner...].reduce(1, *)
    ) { d, s, _, n in body(d, s, n) }
  }
}
