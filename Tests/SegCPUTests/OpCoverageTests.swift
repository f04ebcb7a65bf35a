import SegCPU
import SegCore
import Testing

// MARK: - Every op has a CPU kernel

@Suite struct OpCoverageTests {
  @Test func everyOpKindHasACPUKernel() {
    let missing = CPUBackend.shared.missingKernels
    #expect(missing.isEmpty, "the cpu backend has no kernel for: \(missing.map(\.rawValue).joined(separator: ", "))")
  }
}
