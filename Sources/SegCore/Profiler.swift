import Foundation

// MARK: - Device activity

/// One piece of work a device ran (a kernel, a copy or a fill), read after the fact, with the op
/// that queued it.
public struct DeviceActivity: Sendable, Equatable {
  /// What ran.
  public enum Kind: String, Sendable { case kernel, copy, fill }
  public var kind: Kind
  /// The kernel's name, or the copy's direction ("memcpy HtoD"), or "memset".
  public var name: String
  /// Its device time (end - start) in nanoseconds.
  public var nanoseconds: UInt64
  /// The id given to `DeviceActivityTracer.enter` on the thread that queued it; nil outside any op.
  public var op: UInt64?

  public init(kind: Kind, name: String, nanoseconds: UInt64, op: UInt64?) {
    (self.kind, self.name, self.nanoseconds, self.op) = (kind, name, nanoseconds, op)
  }
}

/// Reads what a device ran after the fact (CUPTI's activity records on CUDA), each piece tied to the
/// op that queued it, so that a profile need not wait for the device after every op.
public protocol DeviceActivityTracer: AnyObject, Sendable {
  /// Where the times come from, for the table's header (e.g. "CUPTI 130500 activity records").
  var source: String { get }
  /// Starts recording; every piece of work the device finishes is handed to `deliver`, on any thread.
  func start(deliver: @escaping @Sendable (DeviceActivity) -> Void) throws
  /// The calling thread starts queueing the work of op `id`.
  func enter(op id: UInt64)
  /// The calling thread is done with op `id`.
  func leave(op id: UInt64)
  /// Waits once for the work queued so far and hands every record still held to `deliver`.
  func collect() throws
  /// Stops recording for good.
  func stop()
}

/// A backend that queues its work (a GPU) and can say afterwards what each op ran on the device.
public protocol ActivityTracingBackend: Backend {
  /// A tracer of this backend's device; nil where its kernels finish before they return (waiting
  /// costs nothing there); an error saying why where it needs one and cannot have it.
  func makeActivityTracer() throws -> (any DeviceActivityTracer)?
}

// MARK: - Op profiler

/// Time and call count per op kind, recorded by `Tensor.apply` inside `record(_:)`. On a backend
/// with an activity tracer (CUDA with CUPTI) the time is the device time of the kernels, copies and
/// fills each op queued, read after the fact with no wait between ops; elsewhere it is the wall time
/// of each op between two waits for the device (a GPU then runs one op at a time).
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

  /// How the times were taken.
  public enum Mode: Sendable, Equatable {
    /// Wall time between waits for the device (the only way on a backend without a tracer).
    case waiting
    /// The same on a backend that has a tracer but could not use it, and why.
    case waitingWithoutTracer(reason: String)
    /// Device time read from a tracer (`source`), with no wait between ops.
    case deviceActivity(source: String)
  }

  private let lock = Lock()
  private var entries: [OpKind: Entry] = [:]
  /// The same by op kind and output type, e.g. "conv2dBackwardFilter f32[3,3,64,64]".
  private var detailed: [String: Entry] = [:]
  /// Device time by kernel name (and "memcpy ..." / "memset"), when traced.
  private var kernels: [String: Entry] = [:]
  /// Device work queued outside any op (a batch uploaded, a value read), when traced.
  private var outside = Entry()

  /// Captured steps launched as one graph: their count, time, and the work in each graph.
  public private(set) var graphLaunches = Entry()
  /// The pieces of work (launches, library calls, copies) in the last graph launched.
  public private(set) var graphNodes = 0

  // The tracer, the backend it traces (nil: every backend), and whether the choice was made.
  private var tracer: (any DeviceActivityTracer)?
  private var tracedBackend: ObjectIdentifier?
  private var tracerChosen = false
  private var fallbackReason: String?
  /// What each traced op was: op id `firstOp + i` is `keyList[opKeys[i]]`.
  private struct Key: Hashable {
    let kind: OpKind?  // nil: a graph launch
    let output: TensorType?
  }
  private var keyIndex: [Key: Int32] = [:]
  private var keyList: [(key: Key, detail: String)] = []
  /// Calls and device time of each key (`keyList`'s order).
  private var keyEntries: [Entry] = []
  private var opKeys: [Int32] = []
  private var firstOp: UInt64 = 1
  /// Whether ops were traced since the records were last collected (each collection waits once).
  private var unsettled = false
  /// Op ids kept for late records; far more than a step queues before its records come back.
  static let opWindow = 1 << 22

  public init() {}

  /// A profiler that reads every backend's device time from `tracer` (started here).
  public init(tracer: any DeviceActivityTracer) throws {
    try use(tracer, for: nil)
  }

  deinit { tracer?.stop() }

  /// How this profile's times were taken.
  public var mode: Mode {
    lock.withLock {
      if let tracer { return .deviceActivity(source: tracer.source) }
      return fallbackReason.map { .waitingWithoutTracer(reason: $0) } ?? .waiting
    }
  }

  // MARK: Measuring

  /// Runs `body`, the kernels of one op of `kind` whose first output is `output`, on `backend`,
  /// and counts it: traced (no wait) where the backend has a tracer, else timed between two waits.
  public func measure<T>(_ kind: OpKind, output: TensorType, on backend: any Backend, _ body: () throws -> T) throws -> T {
    if let tracer = tracer(for: backend) {
      let id = lock.withLock { () -> UInt64 in
        entries[kind, default: Entry()].calls += 1
        return register(Key(kind: kind, output: output)) { "\(kind.rawValue) \(output)" }
      }
      tracer.enter(op: id)
      defer { tracer.leave(op: id) }
      return try body()
    }
    try backend.synchronize()
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try body()
    try backend.synchronize()
    add(kind, output: output, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    return result
  }

  /// Runs `body`, one launch of a captured graph of `nodes` pieces of work on `backend`, and counts
  /// it as `measure` counts an op.
  public func measureGraphLaunch(nodes: Int, on backend: any Backend, _ body: () throws -> Void) throws {
    if let tracer = tracer(for: backend) {
      let id = lock.withLock { () -> UInt64 in
        graphLaunches.calls += 1
        graphNodes = nodes
        return register(Key(kind: nil, output: nil)) { "graph launch" }
      }
      tracer.enter(op: id)
      defer { tracer.leave(op: id) }
      return try body()
    }
    try backend.synchronize()
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    try backend.synchronize()
    addGraphLaunch(nodes: nodes, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
  }

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

  // MARK: Tracing

  /// The tracer for `backend`'s ops, made at its first op when the backend offers one.
  private func tracer(for backend: any Backend) -> (any DeviceActivityTracer)? {
    let traced = lock.withLock { () -> (any DeviceActivityTracer)?? in
      if let tracer { return .some(tracedBackend == nil || tracedBackend == ObjectIdentifier(backend) ? tracer : nil) }
      return tracerChosen ? .some(nil) : nil
    }
    if let traced { return traced }
    guard let tracing = backend as? any ActivityTracingBackend else { return nil }
    lock.withLock { tracerChosen = true }
    do {
      guard let made = try tracing.makeActivityTracer() else { return nil }
      try use(made, for: backend)
      return made
    } catch {
      lock.withLock { fallbackReason = "\(error)" }
      return nil
    }
  }

  private func use(_ tracer: any DeviceActivityTracer, for backend: (any Backend)?) throws {
    try tracer.start { [weak self] in self?.attribute($0) }
    lock.withLock {
      (self.tracer, tracedBackend, tracerChosen) = (tracer, backend.map { ObjectIdentifier($0) }, true)
    }
  }

  /// A new op id for `key` (under the lock).
  private func register(_ key: Key, detail: () -> String) -> UInt64 {
    let index: Int32
    if let i = keyIndex[key] { index = i } else {
      index = Int32(keyList.count)
      keyIndex[key] = index
      keyList.append((key, detail()))
      keyEntries.append(Entry())
    }
    keyEntries[Int(index)].calls += 1
    if opKeys.count >= 2 * Self.opWindow {
      opKeys.removeFirst(Self.opWindow)
      firstOp += UInt64(Self.opWindow)
    }
    opKeys.append(index)
    unsettled = true
    return firstOp + UInt64(opKeys.count - 1)
  }

  /// Adds one piece of device work to its op's rows and its kernel's.
  private func attribute(_ a: DeviceActivity) {
    let seconds = Double(a.nanoseconds) * 1e-9
    lock.withLock {
      kernels[a.name, default: Entry()].calls += 1
      kernels[a.name, default: Entry()].seconds += seconds
      guard let op = a.op, op >= firstOp, op - firstOp < UInt64(opKeys.count) else {
        outside.calls += 1
        outside.seconds += seconds
        return
      }
      let index = Int(opKeys[Int(op - firstOp)])
      keyEntries[index].seconds += seconds
      guard let kind = keyList[index].key.kind else { return graphLaunches.seconds += seconds }
      entries[kind, default: Entry()].seconds += seconds
    }
  }

  /// Every traced record delivered (one wait for the device, only when ops ran since the last
  /// time); the problem, if that failed.
  private func settle() -> String? {
    let tracer = lock.withLock { () -> (any DeviceActivityTracer)? in
      defer { unsettled = false }
      return unsettled ? self.tracer : nil
    }
    guard let tracer else { return nil }
    do { try tracer.collect() } catch { return "reading the device's records failed: \(error)" }
    return nil
  }

  // MARK: Reports

  /// Entries by op kind, the most expensive first.
  public var ranked: [(kind: OpKind, entry: Entry)] {
    _ = settle()
    return lock.withLock { entries.map { ($0.key, $0.value) }.sorted { $0.1.seconds > $1.1.seconds } }
  }

  /// Entries by op kind and output type, the most expensive first.
  public var rankedByOutput: [(op: String, entry: Entry)] {
    _ = settle()
    return lock.withLock {
      // Traced ops (per key) and waited-for ones (per detail) in one list.
      var rows = detailed
      for (i, k) in keyList.enumerated() where k.key.kind != nil {
        rows[k.detail, default: Entry()].calls += keyEntries[i].calls
        rows[k.detail, default: Entry()].seconds += keyEntries[i].seconds
      }
      return rows.map { ($0.key, $0.value) }.sorted { $0.1.seconds > $1.1.seconds }
    }
  }

  /// Device time by kernel name (and copies, fills), the most expensive first; empty unless traced.
  public var rankedKernels: [(name: String, entry: Entry)] {
    _ = settle()
    return lock.withLock { kernels.map { ($0.key, $0.value) }.sorted { $0.1.seconds > $1.1.seconds } }
  }

  /// One line saying how the times were taken, for the top of each table.
  public var header: String? {
    switch mode {
    case .waiting: return nil
    case .waitingWithoutTracer(let reason):
      return "wall time per op, waiting for the device before and after each op (so the device runs one op at a time): "
        + "no activity tracer (\(reason))"
    case .deviceActivity(let source):
      return "device time of each op's kernels, copies and fills from \(source), with no wait between ops"
    }
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

  /// A text table of the time per op kind and its share of the total; traced, it also gives the
  /// device time queued outside ops and a table of the `kernelCount` most expensive kernels.
  public func table(kernelCount: Int = 25) -> String {
    let problem = settle()
    let rows = ranked
    let total = rows.reduce(0) { $0 + $1.entry.seconds }
    var lines = (header.map { [$0] } ?? []) + (problem.map { [$0] } ?? [])
    if case .deviceActivity = mode, !rows.isEmpty, lock.withLock({ kernels.isEmpty }) {
      lines.append("the tracer gave no record of device work for these ops: the times below are not measured")
    }
    lines.append("op kind                 calls     seconds   share")
    for (kind, e) in rows {
      lines.append(
        kind.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0)
          + String(format: "%7d  %10.3f  %5.1f%%", e.calls, e.seconds, 100 * e.seconds / max(total, 1e-12)))
    }
    let (graphs, nodes, outsideOps) = lock.withLock { (graphLaunches, graphNodes, outside) }
    if graphs.calls > 0 {
      lines.append(
        "graph launch".padding(toLength: 22, withPad: " ", startingAt: 0)
          + String(format: "%7d  %10.3f  (the step captured as one graph of %d kernels, library calls and copies)", graphs.calls, graphs.seconds, nodes))
    }
    lines.append(String(format: "total                          %10.3f", total + graphs.seconds))
    guard case .deviceActivity = mode else { return lines.joined(separator: "\n") }
    lines.append(String(format: "outside ops            %7d  %10.3f  (copies and kernels queued between ops)", outsideOps.calls, outsideOps.seconds))
    return lines.joined(separator: "\n") + "\n\n" + kernelTable(count: kernelCount)
  }

  /// A text table of the `count` kernels (and copies, fills) with the most device time: calls,
  /// total, mean and share. Empty rows unless traced.
  public func kernelTable(count: Int = 25) -> String {
    let rows = rankedKernels
    let total = rows.reduce(0) { $0 + $1.entry.seconds }
    var lines = ["kernel                                                       calls    total ms    mean us   share"]
    for (name, e) in rows.prefix(count) {
      let shown = name.count > 60 ? String(name.prefix(57)) + "..." : name
      lines.append(
        shown.padding(toLength: 60, withPad: " ", startingAt: 0)
          + String(format: "%7d  %10.3f  %9.1f  %5.1f%%", e.calls, e.seconds * 1e3, e.seconds * 1e6 / Double(max(e.calls, 1)),
                   100 * e.seconds / max(total, 1e-12)))
    }
    return lines.joined(separator: "\n")
  }

  /// The profile as JSON-ready values: how it was taken, ops by kind and by output type, kernels.
  public var jsonObject: [String: Any] {
    func rows(_ r: [(String, Entry)]) -> [[String: Any]] {
      r.map { ["name": $0.0, "calls": $0.1.calls, "seconds": $0.1.seconds] }
    }
    let m: String
    switch mode {
    case .waiting: m = "waiting"
    case .waitingWithoutTracer: m = "waiting (no tracer)"
    case .deviceActivity: m = "device activity"
    }
    var object: [String: Any] = [
      "mode": m, "header": header ?? "wall time per op between waits for the device",
      "ops": rows(ranked.map { ($0.kind.rawValue, $0.entry) }), "ops_by_output": rows(rankedByOutput.map { ($0.op, $0.entry) }),
      "kernels": rows(rankedKernels.map { ($0.name, $0.entry) }),
    ]
    let (graphs, outsideOps) = lock.withLock { (graphLaunches, outside) }
    object["graph_launches"] = ["calls": graphs.calls, "seconds": graphs.seconds]
    object["outside_ops"] = ["calls": outsideOps.calls, "seconds": outsideOps.seconds]
    return object
  }
}
