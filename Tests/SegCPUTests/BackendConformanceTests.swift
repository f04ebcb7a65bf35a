import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Every op on the CPU backend against the reference

/// The CPU backend computes in f32 (its oneDNN ops in f32 only): every case of the one list
/// (SegCheck's `OpCases.all`) at f32, forward and backward, against the reference.
@Suite struct BackendConformanceTests {
  @Test func everyOpKindHasACase() {
    #expect(OpCases.missingKinds.isEmpty, "op kinds without a conformance case: \(OpCases.missingKinds)")
  }

  @Test(arguments: OpCases.all.indices)
  func cpuMatchesReference(_ index: Int) {
    expectConforms(OpCases.all[index], dtype: .f32, on: CPUBackend.shared)
  }
}
