import SegCPU
import SegCheck
import SegCore
import Testing

// MARK: - A backend that is wrong on purpose

/// A backend with one op broken: its output perturbed at one element or scaled, or its kernel
/// throwing. It wraps the reference backend by default: the wrapper's point is the fault.
final class BrokenBackend: Backend, @unchecked Sendable {
  enum Fault { case perturb, scale(Double), fail }
  let base: any Backend
  let broken: OpKind
  let fault: Fault
  var name: String { "\(base.name) with a broken \(broken.rawValue)" }

  /// The base's table with a first candidate for the broken kind's type that spoils its output.
  private(set) var kernels: KernelTable

  init(_ broken: OpKind, _ fault: Fault, base: any Backend = ReferenceBackend.shared) {
    (self.broken, self.fault, self.base) = (broken, fault, base)
    kernels = base.kernels
    kernels.backendName = "\(base.name) with a broken \(broken.rawValue)"
    intercept(Primitives.type(of: broken))
  }

  private func intercept<P: Primitive>(_ type: P.Type) {
    kernels.registerOutputs(type, "broken", first: true) { [base, broken, fault] op, inputs, outputs in
      guard op.kind == broken else { return nil }
      let y = try base.download(try base.kernels.run(op, inputs, outputs: outputs)[0], type: outputs[0])
      var v = y.doubles
      switch fault {
      case .fail: throw TensorError(op: broken.rawValue, "deliberately broken")
      case .perturb: v[v.count / 2] += 0.01 * max(1, abs(v[v.count / 2]))
      case .scale(let s): v = v.map { $0 * s }
      }
      return [try base.upload(HostTensor(type: outputs[0], doubles: v))]
    }
  }

  func upload(_ host: HostTensor) throws -> any DeviceStorage { try base.upload(host) }
  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor { try base.download(storage, type: type) }
}

// MARK: - Tests

@Suite struct OpConformanceTests {
  static var f32: OpConformance.Options {
    var o = OpConformance.Options()
    o.dtypes = [.f32]
    return o
  }

  @Test func everyOpKindHasTwoOrMoreCases() {
    #expect(OpCases.missingKinds.isEmpty, "op kinds without a case: \(OpCases.missingKinds)")
    for kind in OpKind.allCases {
      #expect(OpCases.all.filter { $0.kind == kind }.count >= 2, "\(kind) has fewer than two shapes")
    }
    #expect(Set(OpCases.all.map(\.description)).count == OpCases.all.count, "case names are unique (they seed the inputs)")
  }

  /// The whole run's report: every kind, forward and backward rows. (The CPU backend against the
  /// reference runs case by case in SegCPUTests and whole in the `doctor --check --device cpu` CLI
  /// test, in a process of its own.)
  @Test func aFullRunCoversEveryKind() throws {
    let report = OpConformance.run(candidate: ReferenceBackend.shared, baseline: ReferenceBackend.shared, options: Self.f32)
    #expect(report.passed, "\(report.text)")
    #expect(Set(report.rows.map(\.op)) == Set(OpKind.allCases.map(\.rawValue)))
    #expect(report.rows.contains { $0.direction == "backward x1" && $0.op == "conv2d" })
    #expect(report.rows.allSatisfy { $0.error == 0 })
    #expect(report.text.contains("All \(report.rows.count) comparisons passed"))
  }

  /// Half precision: the candidate's f16/bf16 against the baseline's f32 on the same values.
  @Test func halfPrecisionCasesCompareAgainstF32() {
    var options = OpConformance.Options()
    options.cases = OpCases.all.filter { [.add, .softmax, .sum, .cast].contains($0.kind) }
    options.dtypes = [.f16, .bf16, .f64]
    let report = OpConformance.run(candidate: ReferenceBackend.shared, baseline: ReferenceBackend.shared, options: options)
    #expect(report.failures.isEmpty, "\(report.text)")
    #expect(Set(report.rows.map(\.dtype)) == ["f16", "bf16", "f64"])
    // Only four kinds ran: not a pass of the whole check.
    #expect(!report.passed && report.uncoveredKinds.contains("conv2d"))
    // The candidate rounds to half precision, the baseline does not: the errors are not zero.
    #expect(report.rows.contains { $0.dtype == "bf16" && $0.error > 0 })
  }

  /// A perturbed op fails, named with its dtype, shape and first mismatch; other ops still pass.
  @Test func aPerturbedOpFailsByName() {
    let report = OpConformance.run(candidate: BrokenBackend(.sqrt, .perturb), baseline: ReferenceBackend.shared, options: Self.f32)
    #expect(!report.passed)
    let failures = report.failures
    #expect(!failures.isEmpty && failures.allSatisfy { $0.op == "sqrt" }, "\(failures.map(\.failureText))")
    let forward = failures.first { $0.direction == "forward" }
    #expect(forward?.firstMismatch != nil)
    #expect(forward?.failureText.contains("sqrt \"\" f32 [3,5] forward: error") == true, "\(forward?.failureText ?? "")")
    #expect(report.rows.contains { $0.op == "add" && $0.passed })
    #expect(report.text.contains("sqrt                  f32    2      ") && report.text.contains("FAILED"))
  }

  /// An op that throws is a failed row with the error; the other cases still run and pass.
  @Test func aThrowingOpIsReportedAndTheOthersRun() {
    let report = OpConformance.run(candidate: BrokenBackend(.argmax, .fail), baseline: ReferenceBackend.shared, options: Self.f32)
    let failures = report.failures
    #expect(Set(failures.map(\.op)).isSubset(of: ["argmax", "oneHot"]), "\(failures.map(\.failureText))")
    #expect(failures.contains { $0.op == "argmax" && $0.message?.contains("deliberately broken") == true })
    #expect(report.rows.filter(\.passed).count > 100)
  }
}
