import Foundation
import SegCore

// MARK: - Parameters

/// A named trainable tensor. The optimizer replaces `value` after each step.
public final class Parameter {
  /// A dotted path such as "encoder0.conv1.kernel"; checkpoints use it as the tensor's key.
  public let name: String
  public var value: Tensor

  public init(_ name: String, _ value: Tensor) {
    self.name = name
    self.value = value
  }
}

// MARK: - Initialisation

/// Glorot-uniform values for a kernel: U(-l, l) with l = sqrt(6 / (fanIn + fanOut)), where the fans
/// count the receptive field (Keras's rule). Deterministic in (seed, stream).
public func glorotUniform(shape: Shape, fanIn: Int, fanOut: Int, seed: UInt64, stream: UInt64) -> HostTensor {
  let limit = (6.0 / Double(fanIn + fanOut)).squareRoot()
  var rng = CounterRandom(seed: seed, stream: stream)
  let values = (0..<shape.count).map { _ in Float((rng.nextUnit() * 2 - 1) * limit) }
  return try! HostTensor(shape: shape, floats: values)
}

/// How the kernels of the ReLU layers start. The 1x1 head, which has no ReLU, is Glorot-uniform
/// either way.
public enum WeightInitializer: String, Codable, Sendable, CaseIterable {
  /// Glorot-uniform, the reference's (Keras's default): its variance 2 / (fanIn + fanOut) halves
  /// the signal at every ReLU, so a deep U-Net without normalisation starts with logits near 0.
  case glorot
  /// He-normal, N(0, 2 / fanIn): keeps the activations' scale through ReLU layers.
  case he
}

/// He-normal values for a kernel: N(0, 2 / fanIn). Deterministic in (seed, stream).
public func heNormal(shape: Shape, fanIn: Int, seed: UInt64, stream: UInt64) -> HostTensor {
  let std = (2.0 / Double(max(fanIn, 1))).squareRoot()
  var rng = CounterRandom(seed: seed, stream: stream)
  let values = (0..<shape.count).map { _ in Float(rng.nextNormal() * std) }
  return try! HostTensor(shape: shape, floats: values)
}

/// A counter-based generator: the i-th value of a stream depends only on (seed, stream, i), so
/// every random choice is reproducible whatever the order of work. Its draws (`nextUnit`,
/// `nextInt`, `nextNormal`) are `RandomBits`'s.
public struct CounterRandom: RandomBits {
  private let key: UInt64
  private var counter: UInt64 = 0

  public init(seed: UInt64, stream: UInt64) {
    key = CounterRandom.mix(seed ^ CounterRandom.mix(stream &+ 0x632B_E59B_D9B4_E019))
  }

  /// SplitMix64's first output for state `x`: a bijective 64-bit mix.
  @inline(__always) public static func mix(_ x: UInt64) -> UInt64 {
    SplitMix64.finalize(x &+ SplitMix64.increment)
  }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    counter &+= 1
    return CounterRandom.mix(key ^ (counter &* 0xD1B5_4A32_D192_ED03))
  }
}
