// MARK: - Public functions

/// A dropout mask of `shape`: element i is 1/keepProbability when kept, else 0, so that
/// x * mask keeps the expected value of x. Whether element i is kept depends only on
/// (seed, offset + i) through `RandomMask.isKept`, so every backend gives the same mask bit for bit
/// and a run is reproducible whatever the threads do. keepProbability in (0, 1]; floating dtype.
public func randomMask(
  shape: Shape, keepProbability: Double, seed: UInt64, offset: UInt64 = 0, dtype: DType = .f32,
  on backend: any Backend
) throws -> Tensor {
  let op = RandomMask(shape: shape, keepProbability: keepProbability, seed: seed, offset: offset, dtype: dtype)
  return try Tensor.apply(op, [], on: backend)
}

/// Inverted dropout: x * randomMask(keepProbability: 1 - rate) on x's backend and dtype, so element
/// i of x (row-major) is zeroed with probability `rate` and otherwise scaled by 1 / (1 - rate).
/// `rate` in [0, 1); rate 0 returns x itself. Vary `offset` (or `seed`) per step and sample so that
/// masks differ: counters offset ..< offset + x.shape.count are used.
public func dropout(_ x: Tensor, rate: Double, seed: UInt64, offset: UInt64 = 0) throws -> Tensor {
  guard rate >= 0, rate < 1 else {
    throw TensorError(op: "dropout", operands: [x.type], "rate \(rate) must be in [0, 1)")
  }
  guard x.dtype.isFloatingPoint else {
    throw TensorError(op: "dropout", operands: [x.type], "needs a floating-point tensor; use cast(_:to:)")
  }
  if rate == 0 { return x }
  let mask = try randomMask(
    shape: x.shape, keepProbability: 1 - rate, seed: seed, offset: offset, dtype: x.dtype, on: x.backend)
  return try x * mask
}

// MARK: - RandomMask

/// A counter-based random keep mask (no inputs, no gradient).
///
/// The exact function, which every backend reproduces: for element i (row-major),
/// ```
/// c = offset &+ UInt64(i)
/// z = seed ^ (c &* 0x9E3779B97F4A7C15)          // golden-ratio increment of SplitMix64
/// z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9      // SplitMix64's finaliser
/// z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
/// z =  z ^ (z >> 31)
/// u = z >> 40                                    // top 24 bits, 0 ..< 2^24
/// kept  <=>  Double(u) < keepProbability * 16777216.0   (i.e. u / 2^24 < keepProbability)
/// ```
/// (all arithmetic on UInt64 wrapping mod 2^64; the comparison is exact in Double), and the
/// element's value is dtype.round(1 / keepProbability) when kept, else 0.
public struct RandomMask: Primitive {
  public let shape: Shape
  public let keepProbability: Double
  public let seed: UInt64
  public let offset: UInt64
  public let dtype: DType
  public static let kinds: [OpKind] = [.randomMask]
  public var description: String {
    "randomMask(\(TensorType(shape, dtype)), keep: \(keepProbability), seed: \(seed), offset: \(offset))"
  }

  public init(shape: Shape, keepProbability: Double, seed: UInt64, offset: UInt64, dtype: DType) {
    self.shape = shape
    self.keepProbability = keepProbability
    self.seed = seed
    self.offset = offset
    self.dtype = dtype
  }

  /// The 24 random bits for `counter` under `seed`: SplitMix64's finaliser of
  /// seed ^ (counter * 0x9E3779B97F4A7C15), shifted right by 40.
  @inline(__always) public static func bits(seed: UInt64, counter: UInt64) -> UInt64 {
    SplitMix64.finalize(seed ^ (counter &* SplitMix64.increment)) >> 40
  }

  /// Whether the element at `counter` is kept: bits / 2^24 < keepProbability.
  @inline(__always) public static func isKept(seed: UInt64, counter: UInt64, keepProbability: Double) -> Bool {
    Double(bits(seed: seed, counter: counter)) < keepProbability * 16_777_216.0
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 0)
    let type = TensorType(shape, dtype)
    guard dtype.isFloatingPoint else {
      throw TensorError(op: "randomMask", operands: [type], "the mask needs a floating-point dtype")
    }
    guard shape.dims.allSatisfy({ $0 >= 0 }) else {
      throw TensorError(op: "randomMask", operands: [type], "negative dimension in shape \(shape)")
    }
    guard keepProbability > 0, keepProbability <= 1 else {
      throw TensorError(op: "randomMask", operands: [type], "keepProbability \(keepProbability) must be in (0, 1]")
    }
    return type
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] { [] }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let scale = 1 / keepProbability
    let values = (0..<output.shape.count).map { i in
      RandomMask.isKept(seed: seed, counter: offset &+ UInt64(i), keepProbability: keepProbability) ? scale : 0
    }
    return HostTensor(type: output, doubles: values)
  }
}
