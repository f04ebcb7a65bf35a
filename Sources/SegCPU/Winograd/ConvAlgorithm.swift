import Foundation
import SegCore

// MARK: - Algorithm choice

/// The three computations of a convolution layer.
public enum ConvDirection: String, CaseIterable, Sendable, Codable {
  /// y from x and the filter.
  case forward
  /// dx from dy and the filter.
  case backwardData
  /// The filter's gradient from x and dy.
  case backwardFilter
}

/// How the CPU backend computes 3x3 stride-1 convolutions (forward, backward-data and backward-filter).
public enum ConvAlgorithm: String, CaseIterable, Sendable, Codable {
  /// Winograd where the measured rule (`ConvAlgorithm.prefersWinograd`) says it is faster.
  case auto
  /// oneDNN's direct convolution everywhere.
  case direct
  /// Winograd F(4x4,3x3) for every convolution it can compute (3x3, stride 1, f32).
  case winograd

  /// The algorithm of this task when set (tests force one), else the backend's setting.
  @TaskLocal static var override: ConvAlgorithm?

  /// The setting `CPUBackend.configure(_:)` applied (default auto).
  nonisolated(unsafe) static var configured: ConvAlgorithm = .auto

  /// The algorithm in force for the calling task.
  static var current: ConvAlgorithm { override ?? configured }

  /// Runs `body` with `algorithm` in force for this task (and the tasks it starts).
  public static func with<T>(_ algorithm: ConvAlgorithm, _ body: () throws -> T) rethrows -> T {
    try $override.withValue(algorithm) { try body() }
  }

  /// The measured rule of `auto`: Winograd for the convolutions where it ran faster than oneDNN's
  /// direct convolution on this project's machines (`unet benchmark layers`, BENCHMARKS.md). A
  /// rule of the shape only, never a timing taken at run time, so that the same inputs give the
  /// same results bit for bit on every run. One rule of the layer for its three directions:
  /// both channel counts 64 or more, and the layer's output (the forward convolution's; dy's for
  /// backward-data, whose own output is the larger input) at least 32x32 pixels.
  static func prefersWinograd(_ p: WinogradProblem, _ direction: ConvDirection) -> Bool {
    // Few channels leave the sgemms too thin to beat the direct kernel, and a small image too few
    // tiles to pay for the filter's transform: with 32 channels and 64 pixels as the bounds, the
    // README's default run (16-128 channels, 12-96 pixels a side) trained at 0.79x the direct
    // algorithm's speed; the 572x572 U-Net's 512->1024 and 1024->1024 layers (30x30 and 28x28
    // outputs) measured 0.61-1.15x on one core, backward-data the slowest (a 1024x1024 filter
    // rotated and transformed for 64 tiles).
    let (h, w) = direction == .backwardData ? (p.h, p.w) : (p.oh, p.ow)
    return p.c >= 64 && p.o >= 64 && h * w >= 32 * 32
  }
}

// MARK: - What ran

/// One convolution layer and the algorithm it ran with, as the backend records them.
public struct ConvAlgorithmUse: Codable, Sendable, Equatable {
  /// "forward", "backwardData" or "backwardFilter".
  public let direction: String
  /// e.g. "1x570x570x64 -> 1x568x568x64".
  public let shape: String
  /// "winograd" or "direct".
  public let algorithm: String
  /// Calls so far.
  public var calls: Int
}

/// The algorithm each 3x3 stride-1 convolution shape ran with, for `--profile` and benchmarks.
enum ConvAlgorithmLog {
  nonisolated(unsafe) private static var uses: [String: ConvAlgorithmUse] = [:]
  private static let lock = NSLock()

  /// Records one call; `input -> output` is x -> y forward, dy -> dx backward-data and x -> dy
  /// backward-filter.
  static func record(_ direction: ConvDirection, _ input: Shape, _ output: Shape, winograd: Bool) {
    let direction = direction.rawValue
    let shape = "\(input.dims.map(String.init).joined(separator: "x")) -> \(output.dims.map(String.init).joined(separator: "x"))"
    let algorithm = winograd ? "winograd" : "direct"
    let key = "\(direction) \(shape) \(algorithm)"
    lock.withLock {
      uses[key, default: ConvAlgorithmUse(direction: direction, shape: shape, algorithm: algorithm, calls: 0)].calls += 1
    }
  }

  static var all: [ConvAlgorithmUse] {
    lock.withLock { uses.values.sorted { ($0.direction, $0.shape, $0.algorithm) < ($1.direction, $1.shape, $1.algorithm) } }
  }

  static func reset() { lock.withLock { uses.removeAll() } }
}

extension CPUBackend {
  /// The 3x3 stride-1 convolutions run since the last `resetConvAlgorithmLog()`, with the algorithm
  /// each ran with (direct or Winograd), sorted by direction and shape.
  public var convAlgorithmLog: [ConvAlgorithmUse] { ConvAlgorithmLog.all }

  /// Forgets the recorded convolutions.
  public func resetConvAlgorithmLog() { ConvAlgorithmLog.reset() }

  /// The algorithm for 3x3 stride-1 convolutions in force for the calling task.
  public var convAlgorithm: ConvAlgorithm { ConvAlgorithm.current }
}
