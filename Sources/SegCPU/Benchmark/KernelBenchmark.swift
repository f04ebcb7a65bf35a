import CDNNL
import Foundation
import SegCore

// MARK: - Result

/// What `KernelBenchmark.run` measured: the sgemm ceiling and the CPU backend's convolutions.
public struct KernelBenchmarkResult: Codable, Sendable {
  /// One timed operation.
  public struct Measurement: Codable, Sendable {
    /// e.g. "64->64 at 570x570, 3x3 valid".
    public let layer: String
    /// "sgemm", "forward", "backwardData" or "backwardFilter".
    public let direction: String
    /// "direct" (oneDNN) or "winograd" for a convolution; nil for the sgemm.
    public let algorithm: String?
    /// The largest difference of the Winograd result from the direct one, over the direct
    /// result's largest magnitude (Winograd rows only).
    public let errorVsDirect: Double?
    /// Winograd rows: the share of the convolution's thread-seconds in each phase ("filter",
    /// "input", "gradient", "products", "output"; `WinogradPhases.Phase`), from one untimed run
    /// after the warm-up.
    public let winogradPhases: [String: Double]?
    /// Floating-point operations of one run, in units of 1e9.
    public let gflop: Double
    /// The fastest timed run.
    public let bestSeconds: Double
    /// The median timed run.
    public let medianSeconds: Double
    /// gflop / bestSeconds: for Winograd, the direct algorithm's operations over its time (its
    /// effective rate).
    public let gflops: Double
    /// gflops over the sgemm's gflops (1 for the sgemm itself).
    public let ratioToSgemm: Double
  }

  /// Timed runs per measurement (after one untimed warm-up run).
  public let repeats: Int
  /// How the runs were timed: "wall" or "cpu" (`BenchmarkClock`).
  public let clock: String
  /// oneDNN's version, e.g. "2.6.3".
  public let oneDNN: String
  /// The instruction set oneDNN's kernels use, e.g. "avx2".
  public let isa: String
  /// Processors the process may use (oneDNN's OpenMP threads).
  public let processors: Int
  /// Whether the convolutions wrote their outputs and scratch into an arena whose pages were
  /// already mapped, as the compiled step runs them (`--arena`); else into fresh buffers, as the
  /// eager step does.
  public let arena: Bool
  /// A 4096x4096x4096 dnnl_sgemm: the machine's practical f32 ceiling.
  public let sgemm: Measurement
  /// Forward, backward-data and backward-filter of three U-Net layers, batch 1, each by the
  /// direct algorithm and by Winograd.
  public let convolutions: [Measurement]
}

// MARK: - Benchmark

/// Times the CPU backend's convolutions against oneDNN's sgemm. Not a test: numbers for the
/// `unet benchmark` command, to be read side by side in one run.
///
/// The convolutions run through the backend's kernels as a training step calls them: the
/// activation and the output gradient are already in the layout oneDNN chose (they come out of
/// oneDNN ops in a real step, so their one-time reorder is done in the warm-up run), while the
/// filter is a fresh row-major tensor every run (the optimizer rewrites it each step), so its
/// reorder is timed; the filter gradient is converted to row-major inside the timing, since the
/// optimizer reads it that way. Outputs of the forward and backward-data runs stay in oneDNN's layout.
/// With `arena`, each run's output and its kernel's scratch (`KernelScratch`: Winograd's
/// transforms, the filter's reorders) are regions of one arena per case, mapped by the warm-up, as
/// a compiled step's replay has them; without, they are fresh buffers from the backend's pool, as
/// an eager step's.
public enum KernelBenchmark {
  /// The three U-Net layer shapes measured: (name, input channels, output channels, input size).
  static let layers: [(String, Int, Int, Int)] = [
    ("64->64 at 570x570, 3x3 valid", 64, 64, 570),
    ("512->512 at 66x66, 3x3 valid", 512, 512, 66),
    ("128->64 at 394x394, 3x3 valid", 128, 64, 394),
  ]

  /// Runs the sgemm and every layer's three directions, `repeats` timed runs each, timed by
  /// `clock`, the convolutions in an arena when `arena` is set.
  public static func run(repeats: Int, clock: BenchmarkClock = .wall, arena: Bool = false) throws -> KernelBenchmarkResult {
    try BenchmarkClock.$current.withValue(clock) { try run(repeats: repeats, arena: arena) }
  }

  private static func run(repeats: Int, arena: Bool) throws -> KernelBenchmarkResult {
    let repeats = max(repeats, 1)
    let cases = try [sgemmCase(size: 4096)] + layers.flatMap { try layerCases($0.0, c: $0.1, o: $0.2, size: $0.3, arena: arena) }
    // Round-robin: every round runs each case once (round 0 is the warm-up), so that a machine
    // whose speed drifts (shared cores, clocks) slows every case alike instead of a few.
    var times = [[Double]](repeating: [], count: cases.count)
    try withoutGradients {
      for round in 0...repeats {
        for (i, c) in cases.enumerated() {
          let t = try c.run()
          if round > 0 { times[i].append(t) }
        }
      }
    }
    let sgemm = measurement(cases[0], times[0], ceiling: nil)
    let convs = zip(cases, times).dropFirst().map { measurement($0, $1, ceiling: sgemm.gflops) }
    let v = dnnl_version().pointee
    return KernelBenchmarkResult(
      repeats: repeats, clock: BenchmarkClock.current.rawValue, oneDNN: "\(v.major).\(v.minor).\(v.patch)", isa: CPUFeatures.oneDNNISA,
      processors: ProcessInfo.processInfo.activeProcessorCount, arena: arena, sgemm: sgemm, convolutions: convs)
  }

  /// One timed operation: `run` does it once and returns its seconds.
  private struct Case {
    let layer, direction: String
    var algorithm: String? = nil
    var error: Double? = nil
    var phases: [String: Double]? = nil
    let gflop: Double
    let run: () throws -> Double
  }

  // MARK: sgemm

  private static func sgemmCase(size n: Int) -> Case {
    let a = randomTensor([n, n], scale: 1).floats, b = randomTensor([n, n], scale: 1).floats
    let c = HostBuffer(byteCount: n * n * 4)
    let d = Int64(n)
    return Case(layer: "\(n)x\(n)x\(n)", direction: "sgemm", gflop: 2 * pow(Double(n), 3) / 1e9) {
      var status = dnnl_success
      let t = seconds {
        status = dnnl_sgemm(78, 78, d, d, d, 1, a, d, b, d, 0, c.pointer.assumingMemoryBound(to: Float.self), d)
      }
      try check(status, "dnnl_sgemm")
      return t
    }
  }

  // MARK: Convolutions

  /// The three directions of one layer. Each run gets a fresh row-major filter (made outside the
  /// timing) and runs its direction to completion, in an arena of its case when `arena` is set.
  private static func layerCases(_ name: String, c: Int, o: Int, size: Int, arena: Bool) throws -> [Case] {
    let cpu = CPUBackend.shared
    let out = size - 2
    let geometry = ConvGeometry(strides: (1, 1), padding: .zero)
    let gflop = 2.0 * Double(out * out * 9 * c * o) / 1e9
    let filterHost = randomTensor([3, 3, c, o], scale: 1 / Float(9 * c).squareRoot())
    let x = try Tensor(randomTensor([1, size, size, c], scale: 1), on: cpu)
    let dy = try Tensor(randomTensor([1, out, out, o], scale: 1), on: cpu)

    func timed(_ direction: String, _ algorithm: ConvAlgorithm = .direct, _ body: @escaping (Tensor) throws -> Tensor) -> Case {
      let placed = arena ? PlacedRun() : nil
      return Case(layer: name, direction: direction, algorithm: algorithm.rawValue, gflop: gflop) {
        let w = try Tensor(filterHost, on: cpu)
        let run = { try ConvAlgorithm.with(algorithm) { try body(w) } }
        return try placed?.time(run) ?? timedRun(run).seconds
      }
    }
    let forward = { (w: Tensor) in try conv2d(x, w, padding: .valid) }
    let backwardData = { (w: Tensor) in try conv2dBackwardData(dy, w, inputSize: (size, size), geometry: geometry) }
    /// Winograd's difference from the direct result on this layer, and the shares of its phases
    /// (a second run with a fresh filter, as the timed runs have), measured untimed.
    func check(_ body: @escaping (Tensor) throws -> Tensor) throws -> (error: Double, phases: [String: Double]) {
      let w = try Tensor(filterHost, on: cpu)
      let direct = try ConvAlgorithm.with(.direct) { try body(w).floats() }
      let winograd = try ConvAlgorithm.with(.winograd) { try body(w).floats() }
      let scale = direct.reduce(0) { max($0, abs(Double($1))) }
      let error = zip(winograd, direct).reduce(0) { max($0, abs(Double($1.0) - Double($1.1))) } / max(scale, 1e-30)
      let fresh = try Tensor(filterHost, on: cpu)
      let (_, seconds) = try WinogradPhases.measure { try ConvAlgorithm.with(.winograd) { try body(fresh) } }
      let total = seconds.values.reduce(0, +)
      return (error, Dictionary(uniqueKeysWithValues: seconds.map { ($0.key.rawValue, $0.value / max(total, 1e-30)) }))
    }
    var winogradForward = timed("forward", .winograd, forward)
    (winogradForward.error, winogradForward.phases) = try check(forward)
    var winogradBackwardData = timed("backwardData", .winograd, backwardData)
    (winogradBackwardData.error, winogradBackwardData.phases) = try check(backwardData)
    let backwardFilter = { (_: Tensor) in
      let dw = try conv2dBackwardFilter(x, dy, kernelSize: (3, 3), geometry: geometry)
      _ = try (dw.node.storage as! CPUStorage).plainBuffer()
      return dw
    }
    var winogradBackwardFilter = timed("backwardFilter", .winograd, backwardFilter)
    (winogradBackwardFilter.error, winogradBackwardFilter.phases) = try check(backwardFilter)
    return [
      timed("forward", .direct, forward), winogradForward,
      timed("backwardData", .direct, backwardData), winogradBackwardData,
      timed("backwardFilter", .direct, backwardFilter), winogradBackwardFilter,
    ]
  }

  // MARK: Runs in an arena

  /// One case's arena: its first run counts the scratch its kernel asks for and the bytes of its
  /// output (and allocates as an eager step does, untimed: it is the warm-up); from then on each
  /// run's output and scratch are regions of one arena made for them, its pages mapped at once.
  private final class PlacedRun {
    private var arena: CPUArena?
    private var outputBytes = 0, scratchBytes = 0

    /// The seconds of `body`, with its output and scratch in the arena once it exists.
    func time(_ body: () throws -> Tensor) throws -> Double {
      guard let arena else {
        let counting = KernelScratch(nil)
        let (t, bytes) = try KernelScratch.$current.withValue(counting) { try timedRun(body) }
        outputBytes = MemoryPlan.aligned(bytes)
        scratchBytes = counting.requestedBytes
        let made = CPUArena(bytes: outputBytes + scratchBytes)
        memset(made.buffer.pointer, 0, made.byteCount)  // maps its pages, as a replay before finds them
        self.arena = made
        return t
      }
      let output = OutputPlacement([OutputPlacement.Region(arena: arena, offset: 0, bytes: outputBytes)])
      let scratch = KernelScratch(OutputPlacement.Region(arena: arena, offset: outputBytes, bytes: scratchBytes))
      return try OutputPlacement.$current.withValue(output) {
        try KernelScratch.$current.withValue(scratch) { try timedRun(body).seconds }
      }
    }
  }

  /// The seconds of `body` and the bytes of the buffer its result was made in; the result is let
  /// go inside the timing, as a step lets go of a value after its last reader.
  private static func timedRun(_ body: () throws -> Tensor) throws -> (seconds: Double, bytes: Int) {
    var result: Result<Int, Error> = .success(0)
    let t = seconds {
      result = Result {
        let y = try body()
        return withExtendedLifetime(y) { (y.node.storage as? CPUStorage)?.origin.byteCount ?? 0 }
      }
    }
    return (t, try result.get())
  }

  // MARK: Helpers

  private static func measurement(_ c: Case, _ times: [Double], ceiling: Double?) -> KernelBenchmarkResult.Measurement {
    let sorted = times.sorted()
    let best = sorted[0]
    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    let gflops = c.gflop / best
    return .init(
      layer: c.layer, direction: c.direction, algorithm: c.algorithm, errorVsDirect: c.error, winogradPhases: c.phases, gflop: c.gflop, bestSeconds: best, medianSeconds: median, gflops: gflops,
      ratioToSgemm: ceiling.map { gflops / $0 } ?? 1)
  }

  private static func seconds(_ body: () -> Void) -> Double { BenchmarkClock.measure(body) }

  /// Uniform values in [-scale, scale) from a fixed-seed xorshift generator (the system generator
  /// makes a system call per value, which takes longer than the benchmark itself).
  static func randomTensor(_ shape: Shape, scale: Float) -> HostTensor {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    let values = (0..<shape.count).map { _ -> Float in
      state ^= state << 13
      state ^= state >> 7
      state ^= state << 17
      return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    return try! HostTensor(shape: shape, floats: values)
  }
}
