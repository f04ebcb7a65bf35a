@testable import SegCPU
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

// MARK: - Every candidate of the CPU's kernel table on its own

/// Each (primitive type, candidate) of the CPU's table runs its type's op cases alone, at the
/// dtypes it takes: oneDNN and the blocked kernels f32 (and bf16 on a processor with AVX-512
/// BF16), Winograd f32, the Swift kernels f32 and f64, the "bf16" ones bf16 (through f32), the
/// "separate" ones (joined ops run apart) at oneDNN's dtypes. The
/// blocked kernels take only blocked operands, so their cases get inputs in oneDNN's blocked layout, and they may decline a case whose
/// channels are not whole blocks.
@Suite struct CandidateConformanceTests {
  @Test(arguments: KernelCandidate.all(of: CPUBackend.shared))
  func candidateMatchesReference(_ candidate: KernelCandidate) {
    let cpu = CPUBackend.shared
    // bf16 through oneDNN where the processor has it (`BF16Tests` reports when it does not).
    let oneDNNTypes: [DType] = BF16Machine.available ? [.f32, .bf16] : [.f32]
    switch candidate.name {
    case "blocked":
      expectCandidateConforms(
        candidate, of: cpu, dtypes: oneDNNTypes, extraCases: Self.blockedCases, mayDecline: true,
        wrap: { BlockedUploads($0) })
    case "onednn":
      expectCandidateConforms(candidate, of: cpu, dtypes: oneDNNTypes)
    case "winograd":
      // Forced on (auto would leave the list's small cases to oneDNN); declines other strides and sizes.
      ConvAlgorithm.with(.winograd) {
        expectCandidateConforms(candidate, of: cpu, dtypes: [.f32], extraCases: Self.winogradCases, mayDecline: true)
      }
    case "bf16":
      // It may decline: Adam's "f32 gradient" case keeps an f32 gradient at every dtype, which is
      // the Swift kernel's.
      expectCandidateConforms(candidate, of: cpu, dtypes: [.bf16], mayDecline: true)
    case "swift":
      expectCandidateConforms(candidate, of: cpu, dtypes: [.f32, .f64])
    case "separate":
      expectCandidateConforms(candidate, of: cpu, dtypes: oneDNNTypes)
    default:
      Issue.record("\(candidate): a candidate this test does not know; say which dtypes it takes")
    }
  }

  /// 3x3 stride-1 backward-data and backward-filter cases (the list's are transposed convolutions
  /// of stride 2), which Winograd computes: valid, and padded on one side.
  static let winogradCases: [OpCase] = [
    OpCase(kind: .conv2dBackwardData, label: "3x3 stride 1 valid", inputs: [[2, 5, 6, 8], [3, 3, 5, 8]], dtypes: [.f32]) {
      x, _, _ in try conv2dBackwardData(x[0], x[1], inputSize: (7, 8), geometry: ConvGeometry(strides: (1, 1), padding: .zero))
    },
    OpCase(kind: .conv2dBackwardData, label: "3x3 stride 1 padded", inputs: [[1, 4, 3, 3], [3, 3, 4, 3]], dtypes: [.f32]) {
      x, _, _ in
      try conv2dBackwardData(
        x[0], x[1], inputSize: (5, 4), geometry: ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 0, left: 0, right: 1)))
    },
    OpCase(kind: .conv2dBackwardFilter, label: "3x3 stride 1 valid", inputs: [[2, 7, 6, 5], [2, 5, 4, 3]], dtypes: [.f32]) {
      x, _, _ in try conv2dBackwardFilter(x[0], x[1], kernelSize: (3, 3), geometry: ConvGeometry(strides: (1, 1), padding: .zero))
    },
    OpCase(kind: .conv2dBackwardFilter, label: "3x3 stride 1 padded", inputs: [[1, 5, 6, 4], [1, 4, 5, 3]], dtypes: [.f32]) {
      x, _, _ in
      try conv2dBackwardFilter(
        x[0], x[1], kernelSize: (3, 3), geometry: ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 0, left: 0, right: 1)))
    },
  ]

  /// Cases the blocked kernels take (channels on whole blocks of 8), beside the list's, whose
  /// concat and adds have channel counts no block divides.
  static let blockedCases: [OpCase] = [
    OpCase(kind: .concat, label: "channels on whole blocks", inputs: [[2, 3, 3, 8], [2, 3, 3, 5]], dtypes: [.f32, .bf16]) {
      x, _, _ in try concat([x[0], x[1]])
    },
    OpCase(kind: .add, label: "like rank-4 tensors", inputs: [[2, 3, 4, 5], [2, 3, 4, 5]], dtypes: [.f32, .bf16]) {
      x, _, _ in try x[0] + x[1]
    },
    OpCase(kind: .add, label: "bias on whole blocks", inputs: [[2, 3, 4, 8], [8]], dtypes: [.f32, .bf16]) { x, _, _ in
      try x[0] + x[1]
    },
    OpCase(kind: .fusedElementwise, label: "bias and relu on whole blocks", inputs: [[2, 3, 4, 8], [8]], dtypes: [.f32]) {
      x, _, _ in try fusedElementwise(x, [(.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)])])
    },
    OpCase(kind: .slice, label: "channel window on whole blocks", inputs: [[1, 5, 4, 16]], dtypes: [.f32, .bf16]) { x, _, _ in
      try slice(x[0], starts: [0, 1, 0, 8], sizes: [1, 3, 4, 8])
    },
    OpCase(kind: .skipGradient, label: "two images, two blocks of g, ReLU", inputs: [[2, 6, 6, 8], [2, 3, 3, 8], [2, 4, 4, 16]],
      differentiable: [false, false, false], dtypes: [.f32]) { x, _, _ in
      try skipGradient(x[0], x[1], x[2], pool: MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2), channels: 8, reluBackward: true)
    },
    OpCase(kind: .skipGradient, label: "stride 3, odd crop, whole blocks", inputs: [[1, 8, 8, 8], [1, 3, 3, 8], [1, 5, 6, 24]],
      differentiable: [false, false, false], dtypes: [.f32]) { x, _, _ in
      try skipGradient(x[0], x[1], x[2], pool: MaxPool2D(windowH: 2, windowW: 2, strideH: 3, strideW: 3), channels: 16, reluBackward: false)
    },
  ]
}

/// `base` with every non-empty rank-4 f32 or bf16 tensor uploaded in oneDNN's blocked layout nChw8c
/// (or nChw16c with `block` 16), as a oneDNN op leaves its output: the operands the blocked kernels take.
final class BlockedUploads: Backend, @unchecked Sendable {
  let base: any Backend
  let block: Int
  init(_ base: any Backend, block: Int = 8) {
    self.base = base
    self.block = block
  }

  var name: String { "\(base.name) on blocked inputs" }
  var kernels: KernelTable { base.kernels }

  func upload(_ host: HostTensor) throws -> any DeviceStorage {
    guard host.dtype == .f32 || host.dtype == .bf16, host.shape.rank == 4, host.shape.count > 0 else {
      return try base.upload(host)
    }
    return try CPUBackend.shared.uploadBlocked(host, block: block)
  }

  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    try base.download(storage, type: type)
  }
}
