import Foundation

// MARK: - SplitMix64

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state advanced by the golden-ratio increment
/// and put through a bijective finaliser. The one copy of the generator: data synthesis, the folds,
/// the augmentation's noise, the benchmark's batch and the checks draw from it, and the dropout
/// mask (`RandomMask.bits`) and `CounterRandom` use its finaliser, so a seed gives the same numbers
/// everywhere. The CUDA backend's mask kernel repeats the finaliser in CUDA C; a kernel test
/// checks it against `RandomMask.bits`.
public struct SplitMix64: RandomNumberGenerator, RandomBits, Sendable {
  /// The golden-ratio increment, 2^64 / phi rounded to odd.
  public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

  /// The state; the next output is `finalize(state + increment)`.
  public var state: UInt64

  /// A generator whose first output is `finalize(seed + increment)`.
  @inlinable public init(seed: UInt64) { state = seed }

  /// SplitMix64's finaliser (Stafford's "mix 13"): a bijective 64-bit mix, 0 maps to 0.
  @inlinable @inline(__always) public static func finalize(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// The next 64 random bits.
  @inlinable @inline(__always) public mutating func next() -> UInt64 {
    state &+= SplitMix64.increment
    return SplitMix64.finalize(state)
  }
}

// MARK: - Draws

/// A source of 64-bit words and the draws built on them, so that every generator turns bits into
/// numbers the same way.
public protocol RandomBits {
  /// The next 64 random bits.
  mutating func next() -> UInt64
}

extension RandomBits {
  /// A uniform Double in [0, 1) from the top 53 bits.
  @inlinable public mutating func nextUnit() -> Double { Double(next() >> 11) / 9_007_199_254_740_992 }

  /// A uniform Float in [0, 1) from the top 24 bits.
  @inlinable public mutating func nextUnitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }

  /// An integer in 0..<n: the next word modulo n (n > 0; slightly biased for n far from a power of 2).
  @inlinable public mutating func nextInt(_ n: Int) -> Int { Int(next() % UInt64(n)) }

  /// A standard normal value (Box-Muller, cosine branch, one value per two draws).
  @inlinable public mutating func nextNormal() -> Double {
    let u = max(nextUnit(), 1e-300), v = nextUnit()
    return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
  }
}
