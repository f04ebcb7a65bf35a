import SegCore

// MARK: - Op profile

/// Records the time of every op the run executes (`OpProfiler`) and, when the run ends, hands the
/// table by op kind and the table by op and output type to `report`.
public final class ProfilerCallback: TrainingCallback {
  /// The times recorded so far.
  public let profiler = OpProfiler()
  private let report: (String) -> Void

  /// A profiler handing its tables to `report`.
  public init(report: @escaping (String) -> Void) { self.report = report }

  public func scope<T>(_ body: () throws -> T) throws -> T { try OpProfiler.record(into: profiler, body) }

  public func runEnded() throws { report(profiler.table() + "\n\n" + profiler.detailTable()) }
}
