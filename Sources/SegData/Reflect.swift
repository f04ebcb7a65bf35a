// MARK: - Mirror indexing

/// The index that NumPy's 'reflect' padding reads for position `i` of an axis of length `n`
/// (mirrored about the edge pixels without repeating them), repeating the reflection for any
/// distance, so that a tile larger than the image still reads valid pixels.
@inline(__always) public func reflectIndex(_ i: Int, _ n: Int) -> Int {
  if n == 1 { return 0 }
  let period = 2 * (n - 1)
  var k = i % period
  if k < 0 { k += period }
  return k < n ? k : period - k
}
