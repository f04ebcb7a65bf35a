// MARK: - Broadcasting rule

/// NumPy's broadcasting: shapes are aligned on their last axes, and each pair of dimensions must be
/// equal or one of them 1.
public enum Broadcast {
  /// The broadcast shape of `a` and `b`, or nil when they do not broadcast.
  public static func shape(_ a: Shape, _ b: Shape) -> Shape? {
    let rank = max(a.rank, b.rank)
    var dims = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
      let da = i < rank - a.rank ? 1 : a.dims[i - (rank - a.rank)]
      let db = i < rank - b.rank ? 1 : b.dims[i - (rank - b.rank)]
      guard da == db || da == 1 || db == 1 else { return nil }
      dims[i] = da == 1 ? db : da
    }
    return Shape(dims)
  }

  /// Strides that read `input` as if it had shape `output` (0 along broadcast axes).
  public static func strides(of input: Shape, broadcastTo output: Shape) -> [Int] {
    let s = input.strides
    let lead = output.rank - input.rank
    return (0..<output.rank).map { i in
      i < lead || input.dims[i - lead] == 1 ? 0 : s[i - lead]
    }
  }

  /// For each element of `output` in row-major order, the flat index into an input of shape
  /// `input` broadcast to it (the reference kernels' gather).
  public static func indices(of input: Shape, broadcastTo output: Shape) -> [Int] {
    stridedIndices(dims: output.dims, strides: strides(of: input, broadcastTo: output), start: 0)
  }
}
