import SegCore

// MARK: - Seeded random inputs

/// The checks' deterministic generator, SegCore's SplitMix64, so that every check's inputs are
/// reproducible.
public typealias SeededRandom = SplitMix64

extension SplitMix64 {
  /// Uniform values in [lo, hi).
  public mutating func doubles(_ n: Int, in range: Range<Double> = -1..<1) -> [Double] {
    (0..<n).map { _ in Double.random(in: range, using: &self) }
  }
}

/// A seeded random host tensor of `type` with values in `range` (rounded to the type).
public func randomHost(_ type: TensorType, seed: UInt64, in range: Range<Double> = -1..<1) -> HostTensor {
  var rng = SeededRandom(seed: seed)
  return HostTensor(type: type, doubles: rng.doubles(type.shape.count, in: range))
}

/// A stable 64-bit hash of a string (FNV-1a), so that a case's seed does not depend on where it
/// sits in a list.
func stableHash(_ s: String) -> UInt64 {
  var h: UInt64 = 0xCBF2_9CE4_8422_2325
  for b in s.utf8 {
    h ^= UInt64(b)
    h = h &* 0x100_0000_01B3
  }
  return h
}
