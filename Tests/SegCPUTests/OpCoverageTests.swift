import SegCPU
import SegCore
import Testing

// MARK: - Every op has a CPU kernel

@Suite struct OpCoverageTests {
  @Test func everyOpKindHasACPUKernel() {
    let missing = CPUBackend.shared.missingKernels
    #expect(missing.isEmpty, "the cpu backend has no kernel for: \(missing.map(\.rawValue).joined(separator: ", "))")
  }

  /// Each type's candidates run in the order blocked layout, Winograd, oneDNN, bf16 through f32,
  /// Swift, and the joined ops run apart.
  @Test func candidatesAreTriedBlockedThenOneDNNThenSwift() {
    let kernels = CPUBackend.shared.kernels
    let order = ["blocked", "winograd", "onednn", "bf16", "swift", "separate"]
    for type in Primitives.all {
      let names = kernels.candidates(for: type)
      #expect(!names.isEmpty && names == order.filter(names.contains), "\(type): \(names)")
    }
    #expect(kernels.candidates(for: Slice.self) == ["blocked", "swift"])
    #expect(kernels.candidates(for: Binary.self) == ["blocked", "bf16", "swift"])
    #expect(kernels.candidates(for: ReLU.self) == ["onednn", "bf16", "swift"])
    #expect(kernels.candidates(for: Conv2D.self) == ["winograd", "onednn"])
    #expect(kernels.candidates(for: Conv2DBackwardData.self) == ["winograd", "onednn"])
    #expect(kernels.candidates(for: Conv2DBackwardFilter.self) == ["winograd", "onednn"])
    #expect(kernels.candidates(for: AdamUpdate.self) == ["bf16", "swift"])
    #expect(kernels.candidates(for: SkipGradient.self) == ["blocked", "separate"])
  }
}
