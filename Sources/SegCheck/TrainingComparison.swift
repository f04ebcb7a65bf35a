import SegCore
import SegData
import SegNN
import SegTrain

// MARK: - A small training run on two backends

/// A tiny U-Net trained for a few steps on the candidate and on the baseline from the same seed,
/// on the same synthetic tiles, by the training's own loop and batch source (`TrainingLoop` on a
/// `TrainingPipeline`); the per-step losses must track.
///
/// Tolerance: step 1 differs only by the forward pass's rounding (~1e-6 relative in f32). Later
/// steps also carry the weights' drift: Adam divides each gradient by its own running magnitude,
/// so for weights whose gradient is near zero two correct backends' rounding can move the weight
/// by up to the learning rate per step in different directions. Over 10 steps at lr 1e-3 that
/// keeps the losses of two correct f32 backends close (CPU against reference: 6e-8; another
/// summation order or cuDNN's Winograd convolutions: ~1e-5 expected); 1e-3 leaves a wide margin,
/// while a stale buffer, a race or a kernel off by percents moves the loss by more (convolutions
/// 10% off: ~1e-2). It is a coarse check of the whole step; the op conformance is the fine one.
/// TF32 convolutions round every operand to 10 mantissa bits: 2e-2.
public enum TrainingComparison {
  /// The run's shape; the defaults take a fraction of a second on a GPU and a few seconds on the CPU.
  public struct Options: Codable, Sendable {
    public var depth = 2
    public var baseFilters = 8
    /// The input tile side (the smallest valid side at or above it is used).
    public var inputSize = 44
    public var batchSize = 2
    public var steps = 10
    public var learningRate = 1e-3
    public var seed: UInt64 = 7
    /// Largest |candidate - baseline| / |baseline| of a step's loss.
    public var tolerance = 1e-3
    /// The precision the candidate trains in (the baseline trains in fp32), resolved against it.
    public var precision = Precision.fp32
    public init() {}

    /// The candidate in bf16 against an fp32 baseline: every convolution's operands and the
    /// activations between them round to 8 mantissa bits (u = 2^-8), which moved the loss by up to
    /// 1.3e-3 relative over 10 steps on the CPU; 1e-2 leaves a margin, and convolutions 10% off
    /// still fail it.
    public static func bf16() -> Options {
      var o = Options()
      (o.precision, o.tolerance) = (.bf16, 1e-2)
      return o
    }

    /// The f32 options with TF32's tolerance.
    public static func tf32() -> Options {
      var o = Options()
      o.tolerance = 2e-2
      return o
    }
  }

  /// Trains on both backends; never throws (a failure is reported in the result).
  public static func run(candidate: any Backend, baseline: any Backend, options: Options = Options()) -> TrainingReport {
    var report = TrainingReport(options: options, candidate: candidate.name, baseline: baseline.name)
    do {
      var config = UNetConfig()
      config.depth = options.depth
      config.baseFilters = options.baseFilters
      config.inputSize = (options.inputSize...(options.inputSize + 64)).first { config.geometry(input: $0) != nil } ?? options.inputSize
      report.inputSize = config.inputSize
      report.baselineLosses = try losses(on: baseline, config: config, options: options, precision: .fp32)
      report.candidateLosses = try losses(
        on: candidate, config: config, options: options, precision: PrecisionPolicy(options.precision, on: candidate))
    } catch {
      report.message = "\(error)"
    }
    return report
  }

  /// The total loss of each step on `backend`.
  static func losses(on backend: any Backend, config: UNetConfig, options: Options, precision: PrecisionPolicy) throws -> [Double] {
    let model = try UNet(config: config, seed: options.seed, on: backend)
    var training = TrainingOptions()
    training.batchSize = options.batchSize
    training.learningRate = options.learningRate
    training.maxSteps = options.steps
    training.seed = options.seed
    let slices = SyntheticEM.generate(count: 2, size: max(64, config.outputSize), seed: options.seed)
    var batching = PipelineOptions()
    // On the calling thread: both backends see the same batches, whatever the machine.
    (batching.batchSize, batching.seed, batching.workers) = (options.batchSize, options.seed, 0)
    let pipeline = try TrainingPipeline(slices: slices, config: config, options: batching)
    let recorder = LossRecorder()
    let loop = TrainingLoop(
      model: model, optimizer: Adam(learningRate: options.learningRate), options: training, precision: precision, batches: pipeline,
      on: backend, callbacks: TrainingCallbacks([recorder]))
    try loop.run()
    return recorder.losses
  }
}

/// The total loss of every update.
private final class LossRecorder: TrainingCallback {
  var losses: [Double] = []
  func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool { true }
  func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws { losses.append(event.metrics.total) }
}

// MARK: - Report

/// Both loss series and how far apart they are.
public struct TrainingReport: Encodable, Sendable {
  public let options: TrainingComparison.Options
  public let candidate: String
  public let baseline: String
  /// The tile side used.
  public var inputSize = 0
  public var candidateLosses: [Double] = []
  public var baselineLosses: [Double] = []
  /// Why the run stopped, when it failed.
  public var message: String? = nil

  init(options: TrainingComparison.Options, candidate: String, baseline: String) {
    (self.options, self.candidate, self.baseline) = (options, candidate, baseline)
  }

  /// |candidate - baseline| / |baseline| per step.
  public var differences: [Double] {
    zip(candidateLosses, baselineLosses).map { c, b in
      c == b ? 0 : (c.isFinite && b.isFinite ? abs(c - b) / max(abs(b), 1e-12) : .infinity)
    }
  }

  public var passed: Bool {
    message == nil && candidateLosses.count == options.steps && baselineLosses.count == options.steps
      && differences.allSatisfy { $0 <= options.tolerance }
  }

  enum CodingKeys: String, CodingKey {
    case options, candidate, baseline, inputSize, candidateLosses, baselineLosses, differences, message, passed
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(options, forKey: .options)
    try c.encode(candidate, forKey: .candidate)
    try c.encode(baseline, forKey: .baseline)
    try c.encode(inputSize, forKey: .inputSize)
    try c.encode(candidateLosses, forKey: .candidateLosses)
    try c.encode(baselineLosses, forKey: .baselineLosses)
    try c.encode(differences, forKey: .differences)
    try c.encodeIfPresent(message, forKey: .message)
    try c.encode(passed, forKey: .passed)
  }

  /// Both series side by side, then the verdict.
  public var text: String {
    var lines = [
      "Training: U-Net depth \(options.depth), \(options.baseFilters) filters, \(inputSize)x\(inputSize) tiles, batch \(options.batchSize), "
        + "lr \(formatValue(options.learningRate)), seed \(options.seed): \(candidate) in \(options.precision) against \(baseline) in fp32"
    ]
    if let message { lines.append("  failed: \(message)") }
    lines.append("  " + [pad("step", 4), pad(candidate, 12), pad(baseline, 12), "relative difference"].joined(separator: "  "))
    let d = differences
    for i in 0..<min(candidateLosses.count, baselineLosses.count) {
      lines.append(
        "  " + [
          pad(String(i + 1), 4), pad(formatDecimal(candidateLosses[i]), 12), pad(formatDecimal(baselineLosses[i]), 12),
          formatScientific(d[i]) + (d[i] > options.tolerance ? "  > tolerance" : ""),
        ].joined(separator: "  "))
    }
    lines.append(
      passed
        ? "Losses track: largest relative difference \(formatScientific(d.max() ?? 0)) <= \(formatScientific(options.tolerance))."
        : "Training comparison FAILED (tolerance \(formatScientific(options.tolerance)))."
    )
    return lines.joined(separator: "\n")
  }
}

/// x with 6 decimals (losses are O(1)).
func formatDecimal(_ x: Double) -> String {
  guard x.isFinite else { return formatValue(x) }
  let scaled = (abs(x) * 1e6).rounded()
  let whole = Int(scaled / 1e6), frac = Int(scaled.truncatingRemainder(dividingBy: 1e6))
  let f = String(frac)
  return "\(x < 0 ? "-" : "")\(whole).\(String(repeating: "0", count: 6 - f.count))\(f)"
}
