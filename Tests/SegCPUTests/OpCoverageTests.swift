import SegCPU
import SegCore
import Testing

// MARK: - Every op has a CPU kernel

@Suite struct OpCoverageTests {
  @Test func everyOpKindHasACPUKernel() {
    let missing = OpKind.allCases.filter { CPUBackend.shared.kernel(for: $0) == nil }
    #expect(missing.isEmpty, "the cpu backend has no kernel for: \(missing.map(\.rawValue).joined(separator: ", "))")
  }
}
