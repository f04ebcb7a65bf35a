import Foundation
import SegCore
import SegDistributed
import SegNN

// MARK: - Result

/// A data-parallel training benchmark: rank 0's step alone (the other ranks asleep) and every
/// rank's step with the gradient all-reduce, alternating round by round in one run, so that a
/// change in the machine's load falls on both.
public struct DataParallelBenchmarkResult: Encodable, Sendable {
  /// The ranks of the parallel steps.
  public let ranks: Int
  /// Images per rank and step.
  public let batchSize: Int
  public let inputSize, outputSize, parameters: Int
  /// Threads each rank computes with, and the backend's device (the processor, with its ISA).
  public let threadsPerRank: Int
  public let device, deviceName: String
  public let warmupRounds: Int
  /// Rank 0's step seconds alone, per timed round.
  public let singleStepSeconds: [Double]
  /// Per timed round, the slowest rank's parallel step seconds.
  public let parallelStepSeconds: [Double]
  /// Rank 0 alone: images over its timed seconds.
  public let singleThroughput: Double
  /// All ranks' timed images over the parallel steps' timed seconds (each round's slowest rank).
  public let globalThroughput: Double
  /// The global throughput over `ranks` times the single rank's (1 is perfect scaling).
  public let scalingEfficiency: Double
  /// Per parallel step, in milliseconds: rank 0's training thread blocked waiting for the last
  /// buckets after the backward pass (communication it did not hide), the largest rank's, and
  /// rank 0's time inside the reducer's MPI calls (on the communication thread, when there is one).
  public let waitMSPerStep, largestWaitMSPerStep, mpiMSPerStep: Double
  /// Whether a communication thread reduced the buckets behind the backward pass (false: the
  /// training thread did, inside MPI_Test calls between backward ops).
  public let communicationThread: Bool
  /// The 1, 5 and 15 minute load averages at the end (the machine may be shared).
  public let loadAverage: [Double]
  public let gitCommit: String
  /// The processor's model name and the widest vector ISA its flags show (/proc/cpuinfo).
  public var processor = DataParallelBenchmark.processor()

  /// The speed-up of all ranks over one.
  public var speedup: Double { globalThroughput / max(singleThroughput, 1e-12) }

  enum CodingKeys: String, CodingKey {
    case ranks, parameters, device, speedup
    case batchSize = "batch_size_per_rank", inputSize = "input_size", outputSize = "output_size"
    case threadsPerRank = "threads_per_rank", deviceName = "device_name", warmupRounds = "warmup_rounds"
    case singleStepSeconds = "single_step_seconds", parallelStepSeconds = "parallel_step_seconds"
    case singleThroughput = "single_throughput", globalThroughput = "global_throughput", scalingEfficiency = "scaling_efficiency"
    case waitMSPerStep = "communication_wait_ms_per_step", largestWaitMSPerStep = "largest_rank_communication_wait_ms_per_step"
    case mpiMSPerStep = "mpi_ms_per_step", communicationThread = "communication_thread", loadAverage = "load_average", gitCommit = "git_commit"
    case processor, isa
  }

  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(ranks, forKey: .ranks)
    try c.encode(batchSize, forKey: .batchSize)
    try c.encode(inputSize, forKey: .inputSize)
    try c.encode(outputSize, forKey: .outputSize)
    try c.encode(parameters, forKey: .parameters)
    try c.encode(threadsPerRank, forKey: .threadsPerRank)
    try c.encode(device, forKey: .device)
    try c.encode(deviceName, forKey: .deviceName)
    try c.encode(warmupRounds, forKey: .warmupRounds)
    try c.encode(singleStepSeconds, forKey: .singleStepSeconds)
    try c.encode(parallelStepSeconds, forKey: .parallelStepSeconds)
    try c.encode(singleThroughput, forKey: .singleThroughput)
    try c.encode(globalThroughput, forKey: .globalThroughput)
    try c.encode(speedup, forKey: .speedup)
    try c.encode(scalingEfficiency, forKey: .scalingEfficiency)
    try c.encode(waitMSPerStep, forKey: .waitMSPerStep)
    try c.encode(largestWaitMSPerStep, forKey: .largestWaitMSPerStep)
    try c.encode(mpiMSPerStep, forKey: .mpiMSPerStep)
    try c.encode(communicationThread, forKey: .communicationThread)
    try c.encode(loadAverage, forKey: .loadAverage)
    try c.encode(gitCommit, forKey: .gitCommit)
    try c.encode(processor.name, forKey: .processor)
    try c.encode(processor.isa, forKey: .isa)
  }

  /// A text table of the comparison.
  public func table() -> String {
    let mean = { (xs: [Double]) in 1000 * xs.reduce(0, +) / Double(max(xs.count, 1)) }
    let rows: [(String, String)] = [
      ("setting", "\(inputSize)->\(outputSize), batch \(batchSize) per rank, \(threadsPerRank) thread(s) per rank, \(deviceName)"),
      ("processor", "\(processor.name) (\(processor.isa))"),
      ("1 rank", String(format: "%.4f img/s, step %.0f ms", singleThroughput, mean(singleStepSeconds))),
      ("\(ranks) ranks", String(format: "%.4f img/s global, step %.0f ms (slowest rank)", globalThroughput, mean(parallelStepSeconds))),
      ("speed-up", String(format: "%.3fx (scaling efficiency %.1f%%)", speedup, 100 * scalingEfficiency)),
      ("communication", String(format: "%.1f ms/step waited after backward (largest rank %.1f), %.1f ms/step in MPI calls %@",
                               waitMSPerStep, largestWaitMSPerStep, mpiMSPerStep,
                               communicationThread ? "on the communication thread" : "on the training thread")),
      ("rounds", "\(warmupRounds) warm-up + \(singleStepSeconds.count) timed, alternating 1 rank and \(ranks)"),
      ("load average", loadAverage.map { String(format: "%.2f", $0) }.joined(separator: " ")),
    ]
    return rows.map { $0.0.padding(toLength: 16, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
  }
}

// MARK: - Running

/// Measures data-parallel training scaling on `communicator`'s ranks: each round, rank 0 makes
/// one training step alone while the other ranks sleep in a barrier, then every rank makes one
/// with its gradients averaged over the ranks (`options.steps` rounds, the first
/// `options.warmupSteps` untimed). Both models start from the same weights on one synthetic
/// batch. Every rank must call it; every rank gets the result.
public enum DataParallelBenchmark {
  /// The processor's model name and its widest vector ISA (avx512f, avx2, avx, sse4_2, neon...).
  public static func processor() -> (name: String, isa: String) {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    func field(_ key: String) -> String? {
      info.split(separator: "\n").first { $0.hasPrefix(key) }.flatMap { $0.split(separator: ":", maxSplits: 1).last }
        .map { $0.trimmingCharacters(in: .whitespaces) }
    }
    let flags = Set((field("flags") ?? field("Features") ?? "").split(separator: " ").map(String.init))
    let isa = ["avx512f", "avx2", "avx", "sse4_2", "asimd"].first { flags.contains($0) } ?? "unknown"
    return (field("model name") ?? "unknown", isa)
  }

  public static func run(
    config: UNetConfig, options: BenchmarkOptions, backend: any Backend, communicator: Communicator, bucketMegabytes: Double = 25,
    communicationThread: Bool = true, device: (any DeviceAllReduce)? = nil, progress: ((Int, Int) -> Void)? = nil
  ) throws -> DataParallelBenchmarkResult {
    try options.validate()
    try config.validate()
    guard options.mode == .train, options.compile == nil else {
      throw DistributedError.unsupported("under mpirun, `unet benchmark` measures eager training steps (--mode train, without --xla)")
    }
    let policy = PrecisionPolicy(options.precision, on: backend)
    let (images, targets) = try Benchmark.syntheticBatch(config: config, batchSize: options.batchSize, seed: options.seed, on: backend)
    func trainer(_ reducer: GradientReducer?) throws -> Trainer {
      let model = try UNet(config: config, seed: options.seed, on: backend)
      model.computeType = policy.computeType
      var training = TrainingOptions()
      (training.batchSize, training.seed, training.learningRate) = (options.batchSize, options.seed, options.learningRate)
      let t = Trainer(model: model, optimizer: Adam(learningRate: options.learningRate), options: training,
                      lossScaler: policy.usesLossScaling ? LossScaler() : nil)
      t.reducer = reducer
      return t
    }
    let reducer = GradientReducer(communicator: communicator, bucketMegabytes: bucketMegabytes,
                                  communicationThread: communicationThread, device: device)
    let alone = communicator.isRoot ? try trainer(nil) : nil
    let together = try trainer(reducer)

    let clock = ContinuousClock()
    var single: [Double] = [], parallel: [Double] = []
    var warm = (wait: 0.0, mpi: 0.0)
    for round in 0..<options.steps {
      if round == options.warmupSteps { warm = (reducer.waitSeconds, reducer.mpiSeconds) }
      if let alone {
        let t0 = clock.now
        _ = try alone.step(images: images, targets: targets)
        single.append((clock.now - t0).seconds)
      }
      try communicator.idleBarrier()
      let t1 = clock.now
      _ = try together.step(images: images, targets: targets)
      parallel.append((clock.now - t1).seconds)
      progress?(round + 1, options.steps)
    }
    let timed = options.steps - options.warmupSteps
    // Every rank learns rank 0's single steps and each round's slowest parallel step.
    var singleTimed = communicator.isRoot ? Array(single.suffix(timed)) : [Double](repeating: 0, count: timed)
    try communicator.broadcast(&singleTimed)
    var slowest = Array(parallel.suffix(timed))
    let wait = (reducer.waitSeconds - warm.wait) / Double(timed), mpi = (reducer.mpiSeconds - warm.mpi) / Double(timed)
    slowest.append(wait)
    try communicator.allreduce(&slowest, .max)
    let largestWait = slowest.removeLast()

    let n = options.batchSize, w = communicator.size
    let singleThroughput = Double(n * timed) / max(singleTimed.reduce(0, +), 1e-12)
    let global = Double(w * n * timed) / max(slowest.reduce(0, +), 1e-12)
    var load = [Double](repeating: 0, count: 3)
    if getloadavg(&load, 3) != 3 { load = [] }
    return DataParallelBenchmarkResult(
      ranks: w, batchSize: n, inputSize: config.inputSize, outputSize: config.outputSize, parameters: together.model.parameterCount,
      threadsPerRank: Benchmark.threadCount, device: backend.name, deviceName: backend.deviceDescription,
      warmupRounds: options.warmupSteps, singleStepSeconds: singleTimed, parallelStepSeconds: slowest,
      singleThroughput: singleThroughput, globalThroughput: global, scalingEfficiency: global / (Double(w) * singleThroughput),
      waitMSPerStep: 1000 * wait, largestWaitMSPerStep: 1000 * largestWait, mpiMSPerStep: 1000 * mpi,
      communicationThread: reducer.overlapped, loadAverage: load,
      gitCommit: Benchmark.gitCommit())
  }
}
