// MARK: - Mirror indexing

/// The index that position `i` (any integer, possibly outside 0..<n) reads when an axis of `n`
/// elements is mirror-padded as NumPy's 'reflect' (about the edge element, without repeating it),
/// the reflection repeated for pads longer than the axis: n = 3 gives ..., 1, 0, [0, 1, 2], 1, 0, 1, 2, ...
public func reflectIndex(_ i: Int, size n: Int) -> Int {
  guard n > 1 else { return 0 }
  let period = 2 * (n - 1)
  let j = ((i % period) + period) % period
  return j < n ? j : period - j
}
