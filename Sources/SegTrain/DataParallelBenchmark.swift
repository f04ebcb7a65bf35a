import Foundation
import SegCore
import SegDistributed
import SegNN

// MARK: - Result

/// A data-parallel training benchmark: rank 0 alone (the others idle), then every rank with the
/// gradient all-reduce, side by side in one run.
public struct DataParallelBenchmarkResult: Encodable, Sendable {
  /// The ranks of the second part.
  public let ranks: Int
  /// Rank 0 training alone while the other ranks sleep.
  public let single: BenchmarkResult
  /// Rank 0's steps while every rank trains.
  public let parallel: BenchmarkResult
  /// Images per second of all ranks together: every rank's timed images over the slowest rank's
  /// timed seconds.
  public let globalThroughput: Double
  /// The global throughput over `ranks` times the single rank's (1 is perfect scaling).
  public let scalingEfficiency: Double
  /// Per timed step, rank 0's mean seconds blocked waiting for the last buckets (communication the
  /// backward pass did not hide), and in every MPI call of the reducer; the largest rank's too.
  public let waitMSPerStep, mpiMSPerStep, largestWaitMSPerStep: Double
  /// The 1, 5 and 15 minute load averages when the run ended (the machine may be shared).
  public let loadAverage: [Double]

  enum CodingKeys: String, CodingKey {
    case ranks, single, parallel, loadAverage = "load_average"
    case globalThroughput = "global_throughput", scalingEfficiency = "scaling_efficiency"
    case waitMSPerStep = "communication_wait_ms_per_step", mpiMSPerStep = "mpi_ms_per_step"
    case largestWaitMSPerStep = "largest_rank_communication_wait_ms_per_step"
  }

  /// A text table of the comparison.
  public func table() -> String {
    let rows: [(String, String)] = [
      ("1 rank", String(format: "%.3f img/s (overall), step %.1f ms", single.throughputOverall, single.latencyMeanMS)),
      ("\(ranks) ranks", String(format: "%.3f img/s global, rank 0's step %.1f ms", globalThroughput, parallel.latencyMeanMS)),
      ("speed-up", String(format: "%.3fx (scaling efficiency %.1f%%)", globalThroughput / max(single.throughputOverall, 1e-12),
                          100 * scalingEfficiency)),
      ("communication", String(format: "%.1f ms/step waited after backward (largest rank %.1f), %.1f ms/step in MPI calls",
                               waitMSPerStep, largestWaitMSPerStep, mpiMSPerStep)),
      ("load average", loadAverage.map { String(format: "%.2f", $0) }.joined(separator: " ")),
    ]
    return rows.map { $0.0.padding(toLength: 22, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
  }
}

// MARK: - Running

/// Measures data-parallel training scaling on `communicator`'s ranks in one run: first rank 0
/// trains `options.steps` steps alone while the other ranks sleep in a barrier, then every rank
/// trains as many with its gradients averaged over the ranks. Every rank must call it.
public enum DataParallelBenchmark {
  /// Runs both parts; every rank gets the result.
  public static func run(
    config: UNetConfig, options: BenchmarkOptions, backend: any Backend, communicator: Communicator, bucketMegabytes: Double = 25,
    progress: ((Int, Int) -> Void)? = nil
  ) throws -> DataParallelBenchmarkResult {
    guard options.mode == .train, options.compile == nil else {
      throw DistributedError.unsupported("under mpirun, `unet benchmark` measures eager training steps (--mode train, without --xla)")
    }
    var alone: BenchmarkResult?
    if communicator.isRoot { alone = try Benchmark.run(config: config, options: options, backend: backend, progress: progress) }
    try communicator.idleBarrier()
    // Rank 0's single-rank result, for every rank.
    var singleSeconds = alone?.stepSeconds ?? [Double](repeating: 0, count: options.steps - options.warmupSteps)
    try communicator.broadcast(&singleSeconds)

    let reducer = GradientReducer(communicator: communicator, bucketMegabytes: bucketMegabytes)
    var warm = (wait: 0.0, mpi: 0.0)
    let together = try Benchmark.run(config: config, options: options, backend: backend, progress: { done, total in
      if done == options.warmupSteps { warm = (reducer.waitSeconds, reducer.mpiSeconds) }
      progress?(done, total)
    }, reducer: reducer)
    let timed = Double(together.stepSeconds.count)
    let wait = (reducer.waitSeconds - warm.wait) / timed, mpi = (reducer.mpiSeconds - warm.mpi) / timed
    var largest = [together.stepSeconds.reduce(0, +), wait]
    try communicator.allreduce(&largest, .max)
    let images = Double(communicator.size * options.batchSize) * timed
    let global = images / max(largest[0], 1e-12)
    let single = alone ?? BenchmarkResult(stepSeconds: singleSeconds, flopsPerStep: together.flopsPerStep, peakRSSMB: 0,
                                          peakDeviceMB: nil, config: together.config)
    var load = [Double](repeating: 0, count: 3)
    if getloadavg(&load, 3) != 3 { load = [] }
    return DataParallelBenchmarkResult(
      ranks: communicator.size, single: single, parallel: together, globalThroughput: global,
      scalingEfficiency: global / (Double(communicator.size) * max(single.throughputOverall, 1e-12)),
      waitMSPerStep: 1000 * wait, mpiMSPerStep: 1000 * mpi, largestWaitMSPerStep: 1000 * largest[1], loadAverage: load)
  }
}
