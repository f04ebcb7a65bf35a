import Foundation

// MARK: - Clock

/// How the kernel benchmarks (`KernelBenchmark`, `LayerBenchmark`) time one run.
public enum BenchmarkClock: String, CaseIterable, Sendable, Codable {
  /// Elapsed time: the number to publish, from a quiet machine.
  case wall
  /// The process's CPU time, every thread's, user and system: on a machine other programs load,
  /// a run's own work without the time it waited for a core. Time that threads spin in a library
  /// counts too, so compare algorithms on one core (`taskset -c 0`), where nothing spins.
  case cpu

  /// The clock of the benchmark under way.
  @TaskLocal static var current: BenchmarkClock = .wall

  /// Seconds `body` took by the current clock.
  static func measure(_ body: () -> Void) -> Double {
    switch current {
    case .wall:
      let d = ContinuousClock().measure(body)
      return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    case .cpu:
      let start = processSeconds()
      body()
      return processSeconds() - start
    }
  }

  private static func processSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
  }
}
