import Foundation
import SegCore

// MARK: - Result

/// What `LayerBenchmark.run` measured: every 3x3 stride-1 convolution of a model, forward,
/// backward-data and backward-filter, with the algorithm `--conv-algorithm auto` picks beside the
/// direct one.
public struct LayerBenchmarkResult: Codable, Sendable {
  /// One direction of one layer.
  public struct Row: Codable, Sendable {
    /// e.g. "64->64 at 570x570 valid".
    public let layer: String
    /// "forward", "backwardData" or "backwardFilter".
    public let direction: String
    /// The algorithm auto picks: "winograd" or "direct".
    public let algorithm: String
    /// Floating-point operations of the direct algorithm, in units of 1e9.
    public let gflop: Double
    /// The fastest timed run with auto's algorithm (the filter transform included: a fresh filter every run).
    public let seconds: Double
    /// The fastest timed run of the direct algorithm.
    public let directSeconds: Double
    /// The fastest timed run of Winograd (whichever auto picks).
    public let winogradSeconds: Double
    /// gflop / seconds: for Winograd, its effective rate.
    public let gflops: Double
    /// directSeconds / seconds.
    public let speedup: Double
    /// directSeconds / winogradSeconds: what auto's rule is measured by.
    public let winogradSpeedup: Double
    /// Winograd's largest difference from the direct result over that result's largest magnitude.
    public let errorVsDirect: Double
  }

  /// Timed runs per measurement (after one untimed warm-up run).
  public let repeats: Int
  /// How the runs were timed: "wall" or "cpu" (`BenchmarkClock`).
  public let clock: String
  /// The instruction set of oneDNN's kernels, e.g. "avx512_core".
  public let isa: String
  /// The instruction set of the Winograd kernels.
  public let winogradISA: String
  /// Processors the process may use.
  public let processors: Int
  public let rows: [Row]
  /// Sums of the rows' times: auto's, the direct algorithm's.
  public let totalSeconds, totalDirectSeconds: Double
  /// The largest errorVsDirect of any row.
  public let largestError: Double

  /// The rows as a text table.
  public func table() -> String {
    var lines = [
      "layer                               direction       algorithm   time (ms)   GFLOP/s  vs direct  winograd vs direct  error vs direct",
    ]
    for r in rows {
      lines.append(
        r.layer.padding(toLength: 36, withPad: " ", startingAt: 0) + r.direction.padding(toLength: 16, withPad: " ", startingAt: 0)
          + r.algorithm.padding(toLength: 10, withPad: " ", startingAt: 0)
          + String(format: "%11.2f %9.1f %9.2fx %18.2fx  %.2e", r.seconds * 1e3, r.gflops, r.speedup, r.winogradSpeedup, r.errorVsDirect))
    }
    lines.append(String(format: "all layers: %.1f ms (direct %.1f ms, %.2fx); largest Winograd error %.2e", totalSeconds * 1e3,
                        totalDirectSeconds * 1e3, totalDirectSeconds / max(totalSeconds, 1e-30), largestError))
    return lines.joined(separator: "\n")
  }
}

// MARK: - Benchmark

/// Times each 3x3 stride-1 convolution of a model on the CPU backend, batch 1, in all three
/// directions, with auto's algorithm and the direct one, round-robin as `KernelBenchmark`.
public enum LayerBenchmark {
  /// One convolution: input channels, output channels, input height and width, padding (same or valid).
  public struct ConvShape: Sendable, Equatable {
    public let c, o, h, w: Int
    public let same: Bool
    /// Builds one.
    public init(c: Int, o: Int, h: Int, w: Int, same: Bool) { (self.c, self.o, self.h, self.w, self.same) = (c, o, h, w, same) }
  }

  /// The distinct shapes among the forward convolutions the CPU backend recorded
  /// (`CPUBackend.convAlgorithmLog`), in the order given; batch 1.
  public static func shapes(from log: [ConvAlgorithmUse]) -> [ConvShape] {
    var seen: [ConvShape] = []
    for use in log where use.direction == "forward" {
      let parts = use.shape.components(separatedBy: " -> ").map { $0.split(separator: "x").compactMap { Int($0) } }
      guard parts.count == 2, parts[0].count == 4, parts[1].count == 4 else { continue }
      let (x, y) = (parts[0], parts[1])
      let s = ConvShape(c: x[3], o: y[3], h: x[1], w: x[2], same: y[1] == x[1] && y[2] == x[2])
      if !seen.contains(s) { seen.append(s) }
    }
    return seen
  }

  /// Times every shape, `repeats` timed runs each after a warm-up, by `clock`.
  public static func run(_ shapes: [ConvShape], repeats: Int, clock: BenchmarkClock = .wall) throws -> LayerBenchmarkResult {
    try BenchmarkClock.$current.withValue(clock) { try run(shapes, repeats: repeats) }
  }

  private static func run(_ shapes: [ConvShape], repeats: Int) throws -> LayerBenchmarkResult {
    let repeats = max(repeats, 1)
    let cpu = CPUBackend.shared
    struct Case {
      let layer, direction: String
      let winograd: Bool
      let gflop: Double
      let error: Double
      let winogradRun, directRun: () throws -> Double
    }
    var cases: [Case] = []
    try withoutGradients {
      for s in shapes {
        let (oh, ow) = s.same ? (s.h, s.w) : (s.h - 2, s.w - 2)
        let pad = s.same ? 1 : 0
        let geometry = ConvGeometry(strides: (1, 1), padding: Padding2D(top: pad, bottom: pad, left: pad, right: pad))
        let name = "\(s.c)->\(s.o) at \(s.h)x\(s.w) \(s.same ? "same" : "valid")"
        let filterHost = KernelBenchmark.randomTensor([3, 3, s.c, s.o], scale: 1 / Float(9 * s.c).squareRoot())
        let x = try Tensor(KernelBenchmark.randomTensor([1, s.h, s.w, s.c], scale: 1), on: cpu)
        let dy = try Tensor(KernelBenchmark.randomTensor([1, oh, ow, s.o], scale: 1), on: cpu)
        let forward = { (w: Tensor) in try conv2d(x, w, padding: s.same ? .same : .valid) }
        let backwardData = { (w: Tensor) in try conv2dBackwardData(dy, w, inputSize: (s.h, s.w), geometry: geometry) }
        let backwardFilter = { (_: Tensor) in
          let dw = try conv2dBackwardFilter(x, dy, kernelSize: (3, 3), geometry: geometry)
          _ = try (dw.node.storage as! CPUStorage).plainBuffer()  // the optimizer reads it row-major
          return dw
        }
        let bodies: [(ConvDirection, (Tensor) throws -> Tensor)] = [
          (.forward, forward), (.backwardData, backwardData), (.backwardFilter, backwardFilter),
        ]
        for (direction, body) in bodies {
          let problem = direction == .backwardData
            ? WinogradProblem(n: 1, c: s.o, h: oh, w: ow, o: s.c, oh: s.h, ow: s.w, padTop: 2 - pad, padLeft: 2 - pad)
            : WinogradProblem(n: 1, c: s.c, h: s.h, w: s.w, o: s.o, oh: oh, ow: ow, padTop: pad, padLeft: pad)
          let winograd = ConvAlgorithm.prefersWinograd(problem, direction)
          let timed = { (a: ConvAlgorithm) in
            { () throws -> Double in
              let w = try Tensor(filterHost, on: cpu)
              var failure: Error?
              let t = seconds { do { _ = try ConvAlgorithm.with(a) { try body(w) } } catch { failure = error } }
              if let failure { throw failure }
              return t
            }
          }
          let w = try Tensor(filterHost, on: cpu)
          let want = try ConvAlgorithm.with(.direct) { try body(w).floats() }
          let got = try ConvAlgorithm.with(.winograd) { try body(w).floats() }
          let scale = want.reduce(0) { max($0, abs(Double($1))) }
          let error = zip(got, want).reduce(0) { max($0, abs(Double($1.0) - Double($1.1))) } / max(scale, 1e-30)
          cases.append(Case(
            layer: name, direction: direction.rawValue, winograd: winograd, gflop: 2.0 * Double(oh * ow * 9 * s.c * s.o) / 1e9, error: error,
            winogradRun: timed(.winograd), directRun: timed(.direct)))
        }
      }
    }
    var winograd = [[Double]](repeating: [], count: cases.count), direct = winograd
    try withoutGradients {
      for round in 0...repeats {
        for (i, c) in cases.enumerated() {
          let (a, d) = (try c.winogradRun(), try c.directRun())
          if round > 0 { winograd[i].append(a); direct[i].append(d) }
        }
      }
    }
    let rows = cases.indices.map { i in
      let c = cases[i]
      let (bestWinograd, bestDirect) = (winograd[i].min()!, direct[i].min()!)
      let best = c.winograd ? bestWinograd : bestDirect
      return LayerBenchmarkResult.Row(
        layer: c.layer, direction: c.direction, algorithm: c.winograd ? "winograd" : "direct", gflop: c.gflop, seconds: best,
        directSeconds: bestDirect, winogradSeconds: bestWinograd, gflops: c.gflop / best, speedup: bestDirect / best,
        winogradSpeedup: bestDirect / bestWinograd, errorVsDirect: c.error)
    }
    return LayerBenchmarkResult(
      repeats: repeats, clock: BenchmarkClock.current.rawValue, isa: CPUFeatures.oneDNNISA, winogradISA: "\(WinogradISA.current)",
      processors: ProcessInfo.processInfo.activeProcessorCount, rows: rows,
      totalSeconds: rows.reduce(0) { $0 + $1.seconds }, totalDirectSeconds: rows.reduce(0) { $0 + $1.directSeconds },
      largestError: rows.map(\.errorVsDirect).max() ?? 0)
  }

  private static func seconds(_ body: () -> Void) -> Double { BenchmarkClock.measure(body) }
}
