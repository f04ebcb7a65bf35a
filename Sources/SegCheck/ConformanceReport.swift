import SegCore

// MARK: - Rows

/// One comparison: an op case at one dtype, forward or the gradient of one input.
public struct ConformanceRow: Codable, Sendable {
  /// The op kind, e.g. "conv2d".
  public let op: String
  /// Which case of the op, e.g. "valid 3x3, bias, relu".
  public let label: String
  /// The dtype the case ran at on the candidate.
  public let dtype: String
  /// The input shapes, e.g. "[2,7,6,3] [3,3,3,5] [5]".
  public let shape: String
  /// "forward", or "backward xN": the gradient of input N.
  public let direction: String
  /// The compared tensor's dtype on the candidate (nil when the case failed before producing one).
  public let outputDType: String?
  /// The `RelativeError` (infinity when the case failed).
  public let error: Double
  public let tolerance: Double
  public let passed: Bool
  /// Where the error is largest, and the first element over the tolerance.
  public let worst: Mismatch?
  public let firstMismatch: Mismatch?
  /// Why the case failed without a comparison (an exception, a dtype or shape mismatch).
  public let message: String?

  /// One line saying what failed and where, e.g.
  /// `conv2d "same, stride 2" f16 [1,9,8,4] [3,3,4,6] backward x1: error 3.1e-01 > 1.0e-02; first mismatch [0,1,2,3]: ...`.
  public var failureText: String {
    var s = "\(op) \"\(label)\" \(dtype) \(shape) \(direction): "
    if let message { return s + message }
    s += "error \(formatScientific(error)) > \(formatScientific(tolerance))"
    if let firstMismatch { s += "; first mismatch \(firstMismatch)" }
    if let worst { s += "; largest at \(worst)" }
    return s
  }
}

// MARK: - Report

/// The outcome of `OpConformance.run`: every row, and a summary per op and dtype.
public struct ConformanceReport: Encodable, Sendable {
  public let candidate: String
  public let baseline: String
  public let f64Baseline: String
  public let tf32: Bool
  public let tolerances: ToleranceTable
  public let rows: [ConformanceRow]
  /// Op kinds no case covers (a failure).
  public let uncoveredKinds: [String]

  /// True when every row passed and every op kind was checked.
  public var passed: Bool { uncoveredKinds.isEmpty && !rows.isEmpty && rows.allSatisfy(\.passed) }
  public var failures: [ConformanceRow] { rows.filter { !$0.passed } }

  enum CodingKeys: String, CodingKey { case candidate, baseline, f64Baseline, tf32, tolerances, rows, uncoveredKinds, passed }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(candidate, forKey: .candidate)
    try c.encode(baseline, forKey: .baseline)
    try c.encode(f64Baseline, forKey: .f64Baseline)
    try c.encode(tf32, forKey: .tf32)
    try c.encode(tolerances, forKey: .tolerances)
    try c.encode(rows, forKey: .rows)
    try c.encode(uncoveredKinds, forKey: .uncoveredKinds)
    try c.encode(passed, forKey: .passed)
  }

  /// The summary table (one line per op and dtype: the largest forward and backward errors over
  /// its cases, and the tolerance), then a line per failure with its first mismatch.
  public var text: String {
    let f64 = rows.contains { $0.dtype == "f64" } && f64Baseline != baseline ? " (f64 against \(f64Baseline))" : ""
    let halves = rows.contains { $0.dtype == "f16" || $0.dtype == "bf16" } ? ", half precision against \(baseline) in f32" : ""
    var lines = ["Op conformance: \(candidate) against \(baseline)\(f64)\(halves)\(tf32 ? ", TF32 convolutions" : "")"]
    let header = [pad("op", 20), pad("dtype", 5), pad("cases", 5), pad("forward", 9), pad("backward", 9), pad("tolerance", 9), "result"]
    lines.append(header.joined(separator: "  "))
    var order: [String] = []
    var groups: [String: [ConformanceRow]] = [:]
    for r in rows {
      let key = "\(r.op)\u{0}\(r.dtype)"
      if groups[key] == nil { order.append(key) }
      groups[key, default: []].append(r)
    }
    for key in order {
      let g = groups[key]!
      let forward = g.filter { $0.direction == "forward" }.map(\.error).max()
      let backward = g.filter { $0.direction != "forward" }.map(\.error).max()
      let cases = Set(g.map(\.label)).count
      let failed = g.filter { !$0.passed }.count
      let tolerance = g.map(\.tolerance).max() ?? 0
      lines.append(
        [
          pad(g[0].op, 20), pad(g[0].dtype, 5), pad(String(cases), 5), pad(forward.map { formatScientific($0) } ?? "-", 9),
          pad(backward.map { formatScientific($0) } ?? "-", 9), pad(formatScientific(tolerance), 9),
          failed == 0 ? "ok" : "FAILED (\(failed))",
        ].joined(separator: "  "))
    }
    let f = failures
    if !uncoveredKinds.isEmpty { lines.append("Op kinds without a case: \(uncoveredKinds.joined(separator: ", "))") }
    if !f.isEmpty {
      lines.append("Failures (\(f.count) of \(rows.count) comparisons):")
      lines += f.map { "  " + $0.failureText }
    }
    lines.append(
      passed
        ? "All \(rows.count) comparisons passed (\(Set(rows.map(\.op)).count) op kinds)."
        : "Op conformance FAILED: \(f.count) of \(rows.count) comparisons.")
    return lines.joined(separator: "\n")
  }
}

/// `s` padded with spaces to `width` (longer text is kept whole).
func pad(_ s: String, _ width: Int) -> String {
  s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
