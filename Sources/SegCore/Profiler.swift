import Foundation

// MARK: - Op profiler

/// Wall-clock time and call count per op kind, recorded by `Tensor.apply` inside `record(_:)`.
/// Kernels run synchronously on every backend so far, so each op's time is its kernel's.
public final class OpProfiler: @unchecked Sendable {
  /// The profiler `Tensor.apply` reports to in this task; nil (the default) records nothing.
  /// Task-local, so that work elsewhere in the process (other tests, say) is not counted.
  @TaskLocal public static var active: OpProfiler?

  /// Runs `body` with the ops it applies recorded into `profiler` (nothing when nil).
  public static func record<T>(into profiler: OpProfiler?, _ body: () throws -> T) rethrows -> T {
    try $active.withValue(profiler) { try body() }
  }

  /// Total seconds and calls of one op kind.
  public struct Entry: Sendable {
    public var seconds = 0.0
    public var calls = 0
  }

  private let lock = Lock()
  private var entries: [OpKind: Entry] = [:]
  /// The same by op kind and output type, e.g. "conv2dBackwardFilter f32[3,3,64,64]".
  private var detailed: [String: Entry] = [:]

  /// Captured steps launched as one graph: their count, time, and the work in each graph.
  public private(set) var graphLaunches = Entry()
  /// The pieces of work (launches, library calls, copies) in the last graph launched.
  public private(set) var graphNodes = 0

  public init() {}

  /// Notes one launch of a captured graph of `nodes` pieces of work, taking `seconds`.
  func addGraphLaunch(nodes: Int, seconds: Double) {
    lock.withLock {
      graphLaunches.calls += 1
      graphLaunches.seconds += seconds
      graphNodes = nodes
    }
  }

  func add(_ kind: OpKind, output: TensorType, seconds: Double) {
    lock.withLock {
      entries[kind, default: Entry()].seconds += seconds
      entries[kind, default: Entry()].calls += 1
      let key = "\(kind.rawValue) \(output)"
      detailed[key, default: Entry()].seconds += seconds
      detailed[key, default: Entry()].calls += 1
    }
  }

  /// Entries by op kind, the most expensive first.
  public var ranked: [(kind: OpKind, entry: Entry)] {
    lock.withLock { entries.map { ($0.key, $0.value) }.sorted { $0.1.seconds > $1.1.seconds } }
  }

  /// Entries by op kind and output type, the most expensive first.
  public var rankedByOutput: [(op: String, entry: Entry)] {
    lock.withLock { detailed.map { ($0.key, $0.value) }.sorted { $0.1.seconds > $1.1.seconds } }
  }

  /// A text table of the `count` most expensive ops by kind and output type, with their share of
  /// the total.
  public func detailTable(count: Int = 20) -> String {
    let rows = rankedByOutput
    let total = rows.reduce(0) { $0 + $1.entry.seconds }
    var lines = ["op and output type                             calls     seconds   share"]
    for (op, e) in rows.prefix(count) {
      lines.append(
        op.padding(toLength: 45, withPad: " ", startingAt: 0)
          + String(format: "%7d  %10.3f  %5.1f%%", e.calls, e.seconds, 100 * e.seconds / max(total, 1e-12)))
    }
    return lines.joined(separator: "\n")
  }

  /// A text table of the time per op kind and its share of the total.
  public func table() -> String {
    let rows = ranked
    let total = rows.reduce(0) { $0 + $1.entry.seconds }
    var lines = ["op kind                 calls     seconds   share"]
    for (kind, e) in rows {
      lines.append(
        kind.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0)
          + String(format: "%7d  %10.3f  %5.1f%%", e.calls, e.seconds, 100 * e.seconds / max(total, 1e-12)))
    }
    let graphs = lock.withLock { (graphLaunches, graphNodes) }
    if graphs.0.calls > 0 {
      lines.append(
        "graph launch".padding(toLength: 22, withPad: " ", startingAt: 0)
          + String(format: "%7d  %10.3f  (the step captured as one graph of %d kernels, library calls and copies)", graphs.0.calls, graphs.0.seconds, graphs.1))
    }
    lines.append(String(format: "total                          %10.3f", total + graphs.0.seconds))
    return lines.joined(separator: "\n")
  }
}
