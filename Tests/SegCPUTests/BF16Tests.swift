@testable import SegCPU
import SegCheck
import SegCore
import SegNN
import SegTestSupport
import Testing

// MARK: - Whether this machine convolves in bf16

/// This machine's answer, and the reason the bf16 tests skip where it is no.
enum BF16Machine {
  static let available = CPUFeatures.current.bf16Convolutions
  static let missing = Comment(
    rawValue: "no bf16 convolutions on this machine: \(CPUFeatures.current.bf16Unavailability ?? "")")
}

// MARK: - Detection, with the flags given

@Suite struct CPUFeaturesTests {
  static let withBF16 = "processor\t: 0\nmodel name\t: Some EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
  static let avx2Only = "processor\t: 0\nmodel name\t: Older EPYC\nflags\t\t: fpu sse avx2 fma\n"

  @Test func theFlagsDecide() {
    let bf16 = CPUFeatures(cpuinfo: Self.withBF16, oneDNNHasBF16: true)
    #expect(bf16.processorHasBF16 && bf16.bf16Convolutions && bf16.bf16Unavailability == nil)
    #expect(bf16.modelName == "Some EPYC" && bf16.flags.contains("avx512_vnni"))
    #expect(CPUFeatures(flags: ["amx_bf16"], oneDNNHasBF16: true).bf16Convolutions)

    let avx2 = CPUFeatures(cpuinfo: Self.avx2Only, oneDNNHasBF16: false)
    #expect(!avx2.processorHasBF16 && !avx2.bf16Convolutions)
    #expect(avx2.bf16Unavailability?.contains("lacks AVX-512 BF16") == true, "\(avx2.bf16Unavailability ?? "nil")")

    // A processor with the flag under a oneDNN capped below its bf16 kernels convolves in f32.
    let capped = CPUFeatures(cpuinfo: Self.withBF16, oneDNNHasBF16: false)
    #expect(!capped.bf16Convolutions && capped.bf16Unavailability?.contains("DNNL_MAX_CPU_ISA") == true)
  }

  @Test func withoutBF16TheRunComputesInFP32AndSaysWhy() throws {
    func policy(_ p: Precision, _ f: CPUFeatures) -> PrecisionPolicy {
      PrecisionPolicy(
        p, backendName: "cpu", halfPrecisionConvolutions: false, tf32Convolutions: false,
        bf16Convolutions: f.bf16Convolutions, reason: f.bf16Unavailability)
    }
    let avx2 = CPUFeatures(cpuinfo: Self.avx2Only, oneDNNHasBF16: false)
    let fallback = policy(.bf16, avx2)
    #expect(fallback.effective == .fp32 && fallback.computeType == .f32 && !fallback.usesLossScaling)
    let note = try #require(fallback.note(training: true))
    #expect(note.contains("lacks AVX-512 BF16") && note.contains("bf16 computes in fp32"), "\(note)")

    let bf16 = CPUFeatures(cpuinfo: Self.withBF16, oneDNNHasBF16: true)
    #expect(policy(.bf16, bf16).effective == .bf16 && policy(.bf16, bf16).note(training: true) == nil)
    // bf16 instructions give no f16 convolutions: fp16 still computes in fp32, and says the usual.
    #expect(policy(.fp16, bf16).effective == .fp32)
    #expect(policy(.fp16, bf16).note(training: true)?.contains("no half-precision convolutions") == true)
  }

  @Test func theBackendAnswersForThisMachine() {
    let cpu = CPUBackend.shared
    #expect(cpu.bf16Convolutions == CPUFeatures.current.bf16Convolutions && !cpu.halfPrecisionConvolutions)
    #expect(PrecisionPolicy(.bf16, on: cpu).effective == (BF16Machine.available ? .bf16 : .fp32))
    #expect(cpu.deviceDescription.contains("oneDNN "), "\(cpu.deviceDescription)")
    print("cpu: \(cpu.deviceDescription); bf16 convolutions: \(cpu.bf16Unavailability ?? "yes")")
  }
}

// MARK: - Every op in bf16 against the reference

/// Every case of the one list that runs at bf16, forward and backward, on the CPU backend against
/// the reference (which computes in Double and rounds), within the bf16 tolerance.
@Suite(.enabled(if: BF16Machine.available, BF16Machine.missing)) struct BF16ConformanceTests {
  static let bf16Cases = OpCases.all.indices.filter { OpCases.all[$0].dtypes.contains(.bf16) }

  @Test(arguments: bf16Cases)
  func cpuMatchesReferenceInBF16(_ index: Int) {
    expectConforms(OpCases.all[index], dtype: .bf16, on: CPUBackend.shared)
  }

  /// A tiny U-Net trained in bf16 on the CPU tracks the same run in fp32 step by step.
  @Test func aBF16TrainingRunTracksFP32() {
    let report = TrainingComparison.run(candidate: CPUBackend.shared, baseline: CPUBackend.shared, options: .bf16())
    print(report.text)
    #expect(report.passed, "\(report.text)")
    // The run did compute in bf16: rounding moved the losses.
    #expect(report.differences.contains { $0 > 0 }, "\(report.text)")
  }
}
