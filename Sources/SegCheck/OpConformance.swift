import SegCore

// MARK: - Options

/// Every op case run on a candidate backend and on a baseline backend with the same seeded inputs,
/// forward and backward (the gradient of a random-weighted sum of the output with respect to every
/// differentiable input), compared by `RelativeError` against one `ToleranceTable`.
///
/// Half-precision cases (f16, bf16) run on the baseline in f32 on the same values (every half value
/// is exact in f32), so the candidate is judged against a result more precise than its own; f64
/// cases run on the f64 baseline (the reference backend: fast backends compute in f32).
public enum OpConformance {
  /// What to run and how strictly.
  public struct Options: Sendable {
    /// Dtypes to run (each case runs at those of its own dtypes that are listed here).
    public var dtypes: [DType] = OpCase.allFloating
    /// Whether the candidate's f32 convolutions use TF32 Tensor Cores (looser f32 tolerance for them).
    public var tf32 = false
    public var tolerances = ToleranceTable.standard
    public var cases: [OpCase] = OpCases.all
    /// The seed of the cotangents.
    public var seed: UInt64 = 99
    public init() {}
  }

  // MARK: Running

  /// Runs every case of `options` at each of its dtypes: `candidate` against `baseline` (f64 cases
  /// against `f64Baseline`). Never throws: a case that throws is a failed row naming the error,
  /// and the other cases still run.
  public static func run(
    candidate: any Backend, baseline: any Backend, f64Baseline: any Backend = ReferenceBackend.shared,
    options: Options = Options()
  ) -> ConformanceReport {
    var rows: [ConformanceRow] = []
    for c in options.cases {
      for d in c.dtypes where options.dtypes.contains(d) {
        rows += check(c, dtype: d, candidate: candidate, baseline: d == .f64 ? f64Baseline : baseline, options: options)
      }
    }
    let covered = Set(options.cases.map(\.kind))
    return ConformanceReport(
      candidate: candidate.name, baseline: baseline.name, f64Baseline: f64Baseline.name, tf32: options.tf32,
      tolerances: options.tolerances, rows: rows, uncoveredKinds: OpKind.allCases.filter { !covered.contains($0) }.map(\.rawValue))
  }

  /// One case at one dtype: a forward row, and one backward row per differentiable input when the
  /// output is floating.
  public static func check(
    _ c: OpCase, dtype: DType, candidate: any Backend, baseline: any Backend, options: Options = Options()
  ) -> [ConformanceRow] {
    let hosts = c.hostInputs(dtype)
    // The baseline computes half-precision cases in f32 on the same (exactly representable) values.
    let baseDType: DType = dtype == .f16 || dtype == .bf16 ? .f32 : dtype
    func row(_ direction: String, error: RelativeError?, tolerance: Double, output: DType?, message: String?) -> ConformanceRow {
      ConformanceRow(
        op: c.kind.rawValue, label: c.label, dtype: dtype.rawValue, shape: c.shapeText, direction: direction,
        outputDType: output?.rawValue, error: error?.error ?? .infinity, tolerance: tolerance,
        passed: message == nil && (error?.error ?? .infinity) <= tolerance,
        worst: error?.worst, firstMismatch: error?.firstMismatch, message: message)
    }
    let defaultTolerance = options.tolerances.tolerance(c.kind, dtype: dtype, output: dtype, tf32: options.tf32)

    // Forward: a failure on either side is this case's failure, named by side. (Results rather
    // than do/catch around deferred initialisation, which crashes Swift 6.3's optimiser.)
    let candidateResult = Result { try Run(c, hosts, on: candidate, dtype: dtype) }
    guard case .success(let candidateRun) = candidateResult else {
      return [row("forward", error: nil, tolerance: defaultTolerance, output: nil, message: "\(candidate.name) failed: \(candidateResult.failure)")]
    }
    let baselineResult = Result { try Run(c, hosts.map { $0.converted(to: baseDType) }, on: baseline, dtype: baseDType) }
    guard case .success(let baselineRun) = baselineResult else {
      return [row("forward", error: nil, tolerance: defaultTolerance, output: nil, message: "\(baseline.name) (baseline) failed: \(baselineResult.failure)")]
    }
    let y = candidateRun.output, yBase = baselineRun.output
    let tolerance = options.tolerances.tolerance(c.kind, dtype: dtype, output: y.dtype, tf32: options.tf32)
    let expectedDType: DType = y.dtype == dtype ? baseDType : y.dtype
    guard yBase.dtype == expectedDType, yBase.shape == y.shape else {
      return [
        row(
          "forward", error: nil, tolerance: tolerance, output: y.dtype,
          message: "output \(y.type) on \(candidate.name), \(yBase.type) on \(baseline.name) (expected \(TensorType(y.shape, expectedDType)))")
      ]
    }
    var rows = [
      row("forward", error: RelativeError(y.doubles, yBase.doubles, shape: y.shape, tolerance: tolerance), tolerance: tolerance, output: y.dtype, message: nil)
    ]

    // Backward: one seeded cotangent (rounded to the candidate's output dtype) on both sides.
    let mask = c.gradientMask
    guard y.dtype.isFloatingPoint, mask.contains(true) else { return rows }
    let cotangent = randomHost(y.type, seed: options.seed ^ stableHash(c.description))
    let targets = mask.indices.filter { mask[$0] }
    let gradsResult = Result { try candidateRun.gradients(cotangent, wrt: targets) }
    guard case .success(let grads) = gradsResult else {
      rows.append(row("backward", error: nil, tolerance: tolerance, output: y.dtype, message: "\(candidate.name) failed: \(gradsResult.failure)"))
      return rows
    }
    let baseResult = Result { try baselineRun.gradients(cotangent.converted(to: yBase.dtype), wrt: targets) }
    guard case .success(let gradsBase) = baseResult else {
      rows.append(row("backward", error: nil, tolerance: tolerance, output: y.dtype, message: "\(baseline.name) (baseline) failed: \(baseResult.failure)"))
      return rows
    }
    for (k, (g, gBase)) in zip(grads, gradsBase).enumerated() {
      let direction = "backward x\(targets[k])"
      guard g.shape == gBase.shape else {
        rows.append(row(direction, error: nil, tolerance: tolerance, output: g.dtype, message: "gradient \(g.type) vs \(gBase.type)"))
        continue
      }
      let t = options.tolerances.tolerance(c.kind, dtype: dtype, output: g.dtype, tf32: options.tf32)
      rows.append(row(direction, error: RelativeError(g.doubles, gBase.doubles, shape: g.shape, tolerance: t), tolerance: t, output: g.dtype, message: nil))
    }
    return rows
  }

  /// A case evaluated on one backend, kept for its gradients.
  private struct Run {
    let inputs: [Tensor]
    let result: Tensor
    let output: HostTensor

    init(_ c: OpCase, _ hosts: [HostTensor], on backend: any Backend, dtype: DType) throws {
      inputs = try hosts.map { try Tensor($0, on: backend) }
      result = try c.apply(inputs, backend, dtype)
      output = try result.host()
    }

    func gradients(_ cotangent: HostTensor, wrt targets: [Int]) throws -> [HostTensor] {
      let seed = try Tensor(cotangent, on: result.backend)
      return try SegCore.gradients(of: result, wrt: targets.map { inputs[$0] }, seed: seed).map { try $0.host() }
    }
  }
}

extension Result {
  /// The error's text, or "" for a success.
  var failure: String {
    if case .failure(let e) = self { return "\(e)" }
    return ""
  }
}
