import ArgumentParser
import Foundation
import SegDistributed
import SegCore
import SegNN
import SegTrain

extension BenchmarkMode: ExpressibleByArgument {}

// MARK: - unet benchmark

/// `unet benchmark`: the U-Net's training or inference steps (the default, as the reference's
/// `--benchmark` runs measure them), the CPU backend's convolutions, or the data pipeline alone.
struct BenchmarkCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "benchmark",
    abstract: "Measure the U-Net's steps (step, the default), the CPU backend's convolutions (kernels) or the training data pipeline (pipeline).",
    subcommands: [BenchmarkStepCommand.self, BenchmarkKernelsCommand.self, BenchmarkLayersCommand.self, BenchmarkPipelineCommand.self],
    defaultSubcommand: BenchmarkStepCommand.self)
}

// MARK: - unet benchmark step

/// `unet benchmark [step]`: training or inference throughput and latency of the U-Net.
struct BenchmarkStepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "step",
    abstract: "Time training steps or inference steps of a randomly initialised U-Net on a synthetic batch: throughput (img/s), latency percentiles (ms), GFLOP/s, peak memory.")

  @OptionGroup(title: "Benchmark") var steps: StepOptions
  @OptionGroup(title: "Model") var model: ModelOptions
  @OptionGroup(title: "Precision and device") var device: DeviceOptions
  @OptionGroup(title: "Logging") var logging: LoggingOptions

  /// What is timed and how long.
  struct StepOptions: ParsableArguments {
    @Option(help: "train (forward, loss, gradients, Adam) or predict (forward + softmax).")
    var mode = BenchmarkMode.train
    @Option(name: [.customLong("batch-size"), .customLong("batch_size")], help: "Images per step.")
    var batchSize = 1
    @Option(name: [.customLong("warmup-steps"), .customLong("warmup_steps")], help: "Untimed steps first.")
    var warmupSteps = 200
    @Option(name: [.customLong("max-steps"), .customLong("max_steps")], help: "Steps in all, the warm-up included (1000 train, 600 predict).")
    var maxSteps: Int?
    @Option(help: "Seed of the weights and the batch.")
    var seed: UInt64 = 0
    @Option(help: "Also write the result as one JSON object to this file.")
    var output: String?

    func validate() throws {
      if batchSize < 1 { throw ValidationError("--batch-size: must be at least 1, got \(batchSize)") }
      if warmupSteps < 0 { throw ValidationError("--warmup-steps: must be 0 or more, got \(warmupSteps)") }
      if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps: must be at least 1, got \(maxSteps)") }
    }
  }

  func run() throws {
    var options = BenchmarkOptions()
    options.mode = steps.mode
    options.batchSize = steps.batchSize
    options.warmupSteps = steps.warmupSteps
    options.steps = steps.maxSteps ?? steps.mode.defaultSteps
    options.seed = steps.seed
    options.precision = try device.precision.resolved()
    options.compile = device.compile
    try runBenchmark(options, model: model, device: device.device, output: steps.output, logDir: logging.logDir,
                     profile: logging.profile || logging.profileJSON != nil, profileJSON: logging.profileJSON)
  }
}

// MARK: - Running

/// Runs a benchmark with the reference's model for unset model options; prints the table and the
/// JSON, writes the JSON to `output` and the DLLogger record to `logDir` when given.
func runBenchmark(
  _ options: BenchmarkOptions, model: ModelOptions, device: DeviceChoice, output: String?, logDir: String?, profile: Bool,
  profileJSON: String? = nil
) throws {
  let config = try model.config(embedded: false)
  if let world = try Distributed.start(), world.size > 1 {
    return try runDataParallelBenchmark(options, config: config, device: device.onLocalRank(world.localRank), world: world, output: output)
  }
  let backend = try device.backend(precision: options.precision)
  let policy = PrecisionPolicy(options.precision, on: backend)
  if let note = policy.note(training: options.mode == .train) { print("unet: " + note) }
  let logger = try logDir.map {
    try DLLogger(url: URL(fileURLWithPath: $0), parameters: [
      "exec_mode": .string(options.mode == .train ? "train" : "predict"), "benchmark": true,
      "batch_size": .int(options.batchSize), "warmup_steps": .int(options.warmupSteps), "max_steps": .int(options.steps),
      "device": .string(backend.name), "precision": .string(options.precision.rawValue),
      "compute_precision": .string(policy.effective.rawValue),
    ])
  }
  let profiler = profile ? OpProfiler() : nil
  let bar = ProgressBar()
  print("unet: benchmark \(options.mode.rawValue), batch \(options.batchSize), tile \(config.inputSize)->\(config.outputSize), on \(backend.name), \(policy)\(options.compile != nil ? ", compiled" : ""): \(options.steps) steps, the first \(options.warmupSteps) untimed")
  var result = try Benchmark.run(config: config, options: options, backend: backend, profiler: profiler,
                                 progress: bar.isTerminal ? bar.update : nil)
  result.config.convAlgorithms = convAlgorithmList(backend)
  bar.finish()
  print(result.table())
  if let profiler { print(profiler.table() + "\n\n" + profiler.detailTable()) }
  if let profiler, let profileJSON {
    var object = profiler.jsonObject
    object["benchmark"] = ["mode": options.mode.rawValue, "batch_size": options.batchSize, "profiled_steps": options.steps - options.warmupSteps,
                           "precision": options.precision.rawValue, "device": backend.deviceDescription, "input_size": config.inputSize]
    do {
      try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: profileJSON), options: .atomic)
    } catch { throw ValidationError("--profile-json \(profileJSON): cannot write (\(error.localizedDescription))") }
  }
  if profile, let table = convAlgorithmTable(backend) { print("\n" + table) }
  try logger?.log(step: [], data: result.logData)
  if let output { try writeJSON(result, to: output) }
}

/// `unet benchmark` under mpirun: rank 0 alone, then every rank with the gradient all-reduce;
/// rank 0 prints the global throughput, the scaling efficiency and the time spent waiting on
/// communication, and writes the JSON.
func runDataParallelBenchmark(_ options: BenchmarkOptions, config: UNetConfig, device: DeviceChoice, world: Communicator, output: String?) throws {
  let backend = try device.backend(precision: options.precision)
  let parallel = try DataParallel(communicator: world).withDeviceSums(for: backend)
  if world.isRoot {
    print("unet: data-parallel benchmark on \(world.size) ranks, batch \(options.batchSize) per rank, tile \(config.inputSize)->\(config.outputSize), on \(backend.name): \(options.steps) rounds of one step of rank 0 alone then one of all ranks (the first \(options.warmupSteps) untimed)")
  }
  let result = try DataParallelBenchmark.run(config: config, options: options, backend: backend, communicator: world,
                                             bucketMegabytes: parallel.bucketMegabytes, communicationThread: parallel.communicationThread,
                                             device: parallel.device)
  guard world.isRoot else { return }
  print(result.table())
  if let output { try writeJSON(result, to: output) }
}
