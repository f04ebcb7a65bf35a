import Foundation
import SegCore
import SegDistributed
import SegNN

// MARK: - Options

/// What `Benchmark.run` times: training steps or inference (forward + softmax) steps.
public enum BenchmarkMode: String, CaseIterable, Sendable {
  case train, predict

  /// The reference's step count for the mode: 1000 training steps, 600 inference steps.
  public var defaultSteps: Int { self == .train ? 1000 : 600 }
}

/// A benchmark run as the reference's: `steps` steps at `batchSize` images, the first `warmupSteps`
/// of them untimed.
public struct BenchmarkOptions: Sendable {
  public var mode = BenchmarkMode.train
  public var batchSize = 1
  public var warmupSteps = 200
  public var steps = 1000
  public var seed: UInt64 = 0
  public var learningRate = 1e-4
  /// The arithmetic asked for; resolved against the backend by `Benchmark.run`.
  public var precision = Precision.fp32
  /// How the step is compiled (`--xla`); nil runs it eagerly.
  public var compile: CompileOptions?
  public init() {}

  /// Checks the counts; throws `SettingError` naming the first bad one.
  public func validate() throws {
    if batchSize < 1 { throw SettingError(.batchSize, value: batchSize, "must be at least 1") }
    if warmupSteps < 0 { throw SettingError(.warmupSteps, value: warmupSteps, "must be 0 or more") }
    if steps < 1 { throw SettingError(.maxSteps, value: steps, "must be at least 1") }
    if steps <= warmupSteps {
      throw SettingError(
        .maxSteps, value: steps,
        "leaves no timed step after \(Setting.warmupSteps) \(warmupSteps); the warm-up counts within \(Setting.maxSteps), as the reference's")
    }
  }
}

// MARK: - Result

/// Timings of one benchmark run, as the reference defines them: throughput is the mean over timed
/// steps of batch / step time; latency is per batch, in ms.
public struct BenchmarkResult: Encodable, Sendable {
  /// Where and how it ran (device, precision, batch, sizes, threads, model, compiler, commit).
  public struct Environment: Encodable, Sendable {
    public var mode: String
    public var device: String
    /// The backend's `deviceDescription`, e.g. the GPU's name.
    public var deviceName: String
    /// The precision asked for.
    public var precision = "fp32"
    /// What the convolutions computed in on this backend (fp32 for fp16/bf16 on a backend without
    /// half-precision convolutions).
    public var computePrecision = "fp32"
    /// Whether training steps scaled the loss (fp16).
    public var lossScaling = false
    /// Training steps the loss scaler skipped, warm-up included; nil without loss scaling.
    public var skippedSteps: Int?
    public var compiled = false
    /// Whether the compiled step ran as one captured graph (a CUDA graph); nil when not compiled.
    public var captured: Bool?
    public var batchSize: Int
    public var inputSize: Int
    public var outputSize: Int
    public var threads: Int
    public var warmupSteps: Int
    public var steps: Int
    public var inputChannels, classes, baseFilters, depth, upconvKernel: Int
    public var padding: String
    public var parameters: Int
    public var swiftCompiler: String
    public var gitCommit: String
    /// On the CPU: each 3x3 stride-1 convolution ("direction shape: algorithm", direct or winograd).
    public var convAlgorithms: [String]? = nil
    /// OMP_WAIT_POLICY as the process ran with it (`unet` sets PASSIVE unless it is set): whether
    /// oneDNN's OpenMP threads slept or spun between primitives.
    public var openMPWaitPolicy = ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"]

    enum CodingKeys: String, CodingKey {
      case mode, device, precision, compiled, captured, threads, steps, classes, depth, padding, parameters
      case batchSize = "batch_size", inputSize = "input_size", outputSize = "output_size", warmupSteps = "warmup_steps"
      case inputChannels = "input_channels", baseFilters = "base_filters", upconvKernel = "upconv_kernel"
      case computePrecision = "compute_precision", lossScaling = "loss_scaling", skippedSteps = "skipped_steps"
      case swiftCompiler = "swift_compiler", gitCommit = "git_commit", deviceName = "device_name"
      case convAlgorithms = "conv_algorithms", openMPWaitPolicy = "omp_wait_policy"
    }
  }

  /// Seconds of each timed step, in order.
  public let stepSeconds: [Double]
  /// FLOPs of one step (2 x MACs of every conv, x3 when training) for the whole batch.
  public let flopsPerStep: Double
  public let peakRSSMB: Double
  /// Peak memory of the backend's buffers over the timed steps in MiB (tensors, workspaces and, on
  /// the CPU, freed buffers kept for reuse); nil where the backend does not count it.
  public let peakDeviceMB: Double?
  public var config: Environment

  /// Images per second: the mean over timed steps of batch / step time (the reference's rule).
  public var throughput: Double {
    stepSeconds.reduce(0) { $0 + Double(config.batchSize) / max($1, 1e-12) } / Double(max(stepSeconds.count, 1))
  }
  /// Images per second: all timed images over all timed time.
  public var throughputOverall: Double {
    Double(config.batchSize * stepSeconds.count) / max(stepSeconds.reduce(0, +), 1e-12)
  }
  /// Mean step time in ms.
  public var latencyMeanMS: Double { 1000 * stepSeconds.reduce(0, +) / Double(max(stepSeconds.count, 1)) }
  /// The nearest-rank `p`-th percentile of the step times, in ms.
  public func latencyMS(percentile p: Double) -> Double { 1000 * Benchmark.percentile(p, of: stepSeconds) }
  /// Counted FLOPs per second over the timed steps, in units of 10^9.
  public var gflopsPerSecond: Double { flopsPerStep * Double(stepSeconds.count) / max(stepSeconds.reduce(0, +), 1e-12) / 1e9 }

  enum CodingKeys: String, CodingKey {
    case throughput, throughputOverall = "throughput_overall", latencyMean = "latency_mean_ms", p50 = "latency_p50_ms"
    case p90 = "latency_p90_ms", p95 = "latency_p95_ms", p99 = "latency_p99_ms", gflops = "gflops_per_s"
    case peakRSS = "peak_rss_mb", peakDevice = "peak_device_mb", config, steps = "step_seconds"
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(throughput, forKey: .throughput)
    try c.encode(throughputOverall, forKey: .throughputOverall)
    try c.encode(latencyMeanMS, forKey: .latencyMean)
    try c.encode(latencyMS(percentile: 50), forKey: .p50)
    try c.encode(latencyMS(percentile: 90), forKey: .p90)
    try c.encode(latencyMS(percentile: 95), forKey: .p95)
    try c.encode(latencyMS(percentile: 99), forKey: .p99)
    try c.encode(gflopsPerSecond, forKey: .gflops)
    try c.encode(peakRSSMB, forKey: .peakRSS)
    try c.encodeIfPresent(peakDeviceMB, forKey: .peakDevice)
    try c.encode(config, forKey: .config)
    try c.encode(stepSeconds, forKey: .steps)
  }

  /// The reference's DLLogger keys: throughput_train, latency_train_{mean,90,95,99} (or _test).
  public var logData: [String: LogValue] {
    let tag = config.mode == BenchmarkMode.train.rawValue ? "train" : "test"
    return [
      "throughput_\(tag)": .double(throughput), "latency_\(tag)_mean": .double(latencyMeanMS),
      "latency_\(tag)_90": .double(latencyMS(percentile: 90)), "latency_\(tag)_95": .double(latencyMS(percentile: 95)),
      "latency_\(tag)_99": .double(latencyMS(percentile: 99)),
    ]
  }

  /// A text table of the numbers.
  public func table() -> String {
    let c = config
    let rows: [(String, String)] = [
      ("mode", "\(c.mode), batch \(c.batchSize), \(c.inputSize)->\(c.outputSize), \(c.device), \(precisionText), \(c.threads) threads"),
      ("device", c.deviceName),
      ("steps", "\(c.warmupSteps) warm-up + \(stepSeconds.count) timed"),
      ("throughput", String(format: "%.3f img/s (overall %.3f img/s)", throughput, throughputOverall)),
      ("latency mean", String(format: "%.2f ms", latencyMeanMS)),
      ("latency p50/90/95/99", String(format: "%.2f / %.2f / %.2f / %.2f ms", latencyMS(percentile: 50), latencyMS(percentile: 90),
                                      latencyMS(percentile: 95), latencyMS(percentile: 99))),
      ("compute", String(format: "%.2f GFLOP/s (%.4g GFLOP per step)", gflopsPerSecond, flopsPerStep / 1e9)),
      ("peak RSS", String(format: "%.0f MB", peakRSSMB)),
    ] + (peakDeviceMB.map { [("peak tensor memory", String(format: "%.0f MiB", $0))] } ?? [])
    return rows.map { $0.0.padding(toLength: 22, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
  }

  /// "fp16", or "fp16 computed in fp32", with the loss scaler's skipped steps when there were any.
  var precisionText: String {
    let c = config
    var text = c.precision == c.computePrecision ? c.precision : "\(c.precision) computed in \(c.computePrecision)"
    if let skipped = c.skippedSteps, skipped > 0 { text += " (\(skipped) steps skipped by loss scaling)" }
    return text
  }
}

// MARK: - Running

/// Times training or inference steps of a randomly initialised U-Net on one synthetic batch (made
/// once, so the data pipeline is not measured). Not a test: a measurement.
public enum Benchmark {
  /// Runs `options.steps` steps, timing all but the first `options.warmupSteps` with a monotonic clock.
  /// A training step is `Trainer.step` (forward, loss, gradients, Adam), or `CompiledTrainer.step`
  /// with `options.compile`; an inference step is forward + softmax without gradients (compiled
  /// likewise), downloaded to the host. `profiler`, when given, records
  /// the timed steps only. `progress(done, total)` follows every step. With `reducer`, training
  /// steps average their gradients over its ranks (`DataParallelBenchmark`).
  public static func run(
    config: UNetConfig, options: BenchmarkOptions, backend: any Backend, profiler: OpProfiler? = nil,
    progress: ((Int, Int) -> Void)? = nil, reducer: GradientReducer? = nil
  ) throws -> BenchmarkResult {
    try options.validate()
    try config.validate()
    let n = options.batchSize, s = config.inputSize, o = config.outputSize, c = config.inputChannels, k = config.classes
    let policy = PrecisionPolicy(options.precision, on: backend)
    let model = try UNet(config: config, seed: options.seed, on: backend)
    model.computeType = policy.computeType
    let (images, targets) = try syntheticBatch(config: config, batchSize: n, seed: options.seed, on: backend)

    var training = TrainingOptions()
    (training.batchSize, training.seed, training.learningRate, training.compile) = (n, options.seed, options.learningRate, options.compile)
    let scaler = policy.usesLossScaling && options.mode == .train ? LossScaler() : nil
    let adam = Adam(learningRate: options.learningRate)
    let trainer = options.compile != nil
      ? CompiledTrainer(model: model, optimizer: adam, options: training, lossScaler: scaler)
      : Trainer(model: model, optimizer: adam, options: training, lossScaler: scaler)
    trainer.reducer = reducer
    let step: () throws -> Void
    var programs: () -> [Program] = { (trainer as? CompiledTrainer)?.programs ?? [] }
    switch (options.mode, options.compile) {
    case (.train, _): step = { _ = try trainer.step(images: images, targets: targets) }
    case (.predict, nil): step = { _ = try withoutGradients { try softmax(model(images)).floats() } }
    case (.predict, let compile?):
      // Captured as one graph where the backend can (a GPU): one launch per batch.
      let predict = CompiledFunction(
        "predict", strict: compile.strict, dumpDirectory: compile.dumpDirectory, capture: CaptureOptions()
      ) { xs, _ in
        try withoutGradients { [try softmax(model(xs[0]))] }
      }
      programs = { predict.allPrograms }
      // The weights are inputs, not constants, so that the program holds no copy of them.
      step = { _ = try predict([images] + model.parameters.map(\.value))[0].floats() }
    }

    let total = options.steps
    try OpProfiler.record(into: nil) {
      for i in 0..<options.warmupSteps {
        try step()
        progress?(i + 1, total)
      }
    }
    backend.resetPeakMemory()
    let clock = ContinuousClock()
    var seconds: [Double] = []
    seconds.reserveCapacity(options.steps - options.warmupSteps)
    try OpProfiler.record(into: profiler) {
      for i in 0..<(options.steps - options.warmupSteps) {
        let start = clock.now
        try step()
        seconds.append((clock.now - start).seconds)
        progress?(options.warmupSteps + i + 1, total)
      }
    }

    let forward = 2 * Double(config.forwardMACs) * Double(n)
    let environment = BenchmarkResult.Environment(
      mode: options.mode.rawValue, device: backend.name, deviceName: backend.deviceDescription,
      precision: policy.requested.rawValue,
      computePrecision: policy.effective.rawValue, lossScaling: trainer.lossScaler != nil,
      skippedSteps: trainer.lossScaler?.skippedSteps, compiled: options.compile != nil,
      captured: options.compile == nil ? nil : programs().contains { ($0.capture?.launches ?? 0) > 0 }, batchSize: n, inputSize: s, outputSize: o, threads: threadCount,
      warmupSteps: options.warmupSteps, steps: options.steps, inputChannels: c, classes: k, baseFilters: config.baseFilters,
      depth: config.depth, upconvKernel: config.upconvKernel, padding: config.padding.rawValue,
      parameters: model.parameterCount, swiftCompiler: compilerVersion, gitCommit: gitCommit())
    return BenchmarkResult(stepSeconds: seconds, flopsPerStep: options.mode == .train ? 3 * forward : forward,
                           peakRSSMB: peakRSSMegabytes() ?? 0,
                           peakDeviceMB: backend.peakMemoryBytes.map { Double($0) / 1_048_576 }, config: environment)
  }

  /// The benchmark's batch: images [N,S,S,C] uniform in [0, 1) and random one-hot targets
  /// [N,S',S',K] from `seed` (reproducible, not of any distribution).
  static func syntheticBatch(config: UNetConfig, batchSize n: Int, seed: UInt64, on backend: any Backend) throws -> (Tensor, Tensor) {
    let s = config.inputSize, o = config.outputSize, c = config.inputChannels, k = config.classes
    var random = SplitMix64(seed: seed)
    let images = try Tensor(shape: [n, s, s, c], floats: (0..<n * s * s * c).map { _ in random.nextUnitFloat() }, on: backend)
    var oneHot = [Float](repeating: 0, count: n * o * o * k)
    for p in 0..<n * o * o { oneHot[p * k + Int(random.next() % UInt64(k))] = 1 }
    return (images, try Tensor(shape: [n, o, o, k], floats: oneHot, on: backend))
  }

  // MARK: - Statistics

  /// The nearest-rank percentile: the smallest value with at least p% of the values at or below
  /// it, i.e. sorted[ceil(p/100 * n) - 1] (the minimum for p = 0); 0 for an empty list.
  public static func percentile(_ p: Double, of values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
  }

  // MARK: - Environment

  /// The process's peak resident set (VmHWM of /proc/self/status) in MB; nil where unavailable.
  public static func peakRSSMegabytes() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
      let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Double($0) })
    else { return nil }
    return kb / 1024
  }

  /// Threads the CPU backend may use: OMP_NUM_THREADS (oneDNN's) when set, else the cores the
  /// process is bound to (`mpirun --bind-to core`, `taskset`: oneDNN's OpenMP and our own loops both
  /// start that many), else the cores.
  static var threadCount: Int {
    ProcessInfo.processInfo.environment["OMP_NUM_THREADS"].flatMap { Int($0) } ?? boundCores ?? ProcessInfo.processInfo.activeProcessorCount
  }

  /// The cores in this process's affinity mask (Cpus_allowed in /proc/self/status), if readable.
  static var boundCores: Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
    else { return nil }
    let count = line.dropFirst("Cpus_allowed:".count).filter(\.isHexDigit).reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
    return count > 0 ? count : nil
  }

  /// The compiler that built this binary, as far as `#if compiler` can tell.
  static var compilerVersion: String {
    #if compiler(>=6.3)
      return "6.3 or later"
    #elseif compiler(>=6.2)
      return "6.2"
    #elseif compiler(>=6.1)
      return "6.1"
    #else
      return "6.0 or earlier"
    #endif
  }

  /// `git rev-parse HEAD` in the working directory, or "unknown".
  /// The commit the results belong to: UNET_GIT_COMMIT when set (a bundle built elsewhere records
  /// the commit it was built from), else the working directory's `git rev-parse HEAD`.
  static func gitCommit() -> String {
    if let commit = ProcessInfo.processInfo.environment["UNET_GIT_COMMIT"], !commit.isEmpty { return commit }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git", "rev-parse", "HEAD"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return "unknown" }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return process.terminationStatus == 0 && text.count == 40 ? text : "unknown"
  }
}

// MARK: - Cost

extension UNetConfig {
  /// Multiply-adds of one forward pass of one image at `inputSize`: every conv's output pixels x
  /// k*k*in*out, and every transposed conv's input pixels x k*k*in*out (each input pixel meets the
  /// whole kernel). Pooling, activations, crops and the loss are not counted. 0 for a config whose
  /// geometry does not fit.
  public var forwardMACs: Int {
    guard geometry(input: inputSize) != nil else { return 0 }
    let shrink = padding == .valid ? 2 : 0
    var side = inputSize, macs = 0
    func conv(_ cin: Int, _ cout: Int) {
      side -= shrink
      macs += side * side * 9 * cin * cout
    }
    var channels = inputChannels
    for level in 0..<depth {
      conv(channels, filters(level: level))
      conv(filters(level: level), filters(level: level))
      channels = filters(level: level)
      side /= 2
    }
    conv(channels, filters(level: depth))
    conv(filters(level: depth), filters(level: depth))
    for level in stride(from: depth - 1, through: 0, by: -1) {
      macs += side * side * upconvKernel * upconvKernel * filters(level: level + 1) * filters(level: level)
      side *= 2
      conv(2 * filters(level: level), filters(level: level))
      conv(filters(level: level), filters(level: level))
    }
    return macs + side * side * baseFilters * classes
  }
}
