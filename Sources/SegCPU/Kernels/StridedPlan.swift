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

  /// Runs at most this many elements in one call of a row body.
  static let maxRun = 1 << 14

  /// Calls `body(out, in0, in1, n)` for runs of `n` consecutive output elements starting at output
  /// offset `out`, where input k's elements start at offset `ink` and advance by `innerStride(k)`.
  /// Runs are cut from the innermost axis and handed out to threads; they never overlap.
  func forEachRun(_ body: (_ out: Int, _ in0: Int, _ in1: Int, _ n: Int) -> Void) {
    guard let n = dims.last else { return body(0, 0, 0, 1) }
    guard n > 0, count > 0 else { return }
    let outer = Array(dims.dropLast())
    let rows = outer.reduce(1, *)
    let run = min(n, Self.maxRun)
    let perRow = (n + run - 1) / run
    let s0 = strides[0], s1 = strides.count > 1 ? strides[1] : [Int](repeating: 0, count: dims.count)
    let inner0 = s0[dims.count - 1], inner1 = s1[dims.count - 1]
    Parallel.forEach(rows * perRow, grain: max(1, Parallel.defaultGrain / run), align: 1) { tasks in
      var row = tasks.lowerBound / perRow
      var piece = tasks.lowerBound % perRow
      // The row's multi-index over the outer axes, and each input's offset there.
      var idx = [Int](repeating: 0, count: outer.count)
      var rest = row
      var off0 = 0, off1 = 0
      for d in stride(from: outer.count - 1, through: 0, by: -1) {
        idx[d] = rest % outer[d]
        rest /= outer[d]
        off0 += idx[d] * s0[d]
        off1 += idx[d] * s1[d]
      }
      for _ in tasks {
        let start = piece * run
        body(row * n + start, off0 + start * inner0, off1 + start * inner1, min(run, n - start))
        piece += 1
        guard piece == perRow else { continue }
        piece = 0
        row += 1
        // Odometer over the outer axes, keeping the offsets in step.
        var d = outer.count - 1
        while d >= 0 {
          idx[d] += 1
          off0 += s0[d]
          off1 += s1[d]
          if idx[d] < outer[d] { break }
          off0 -= s0[d] * idx[d]
          off1 -= s1[d] * idx[d]
          idx[d] = 0
          d -= 1
        }
      }
    }
  }
}
