import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - On a real GPU (skipped without one)

/// The CUDA backend on GPU 0, or nil (and the reason) on a machine without a usable GPU.
enum GPU {
  static let backend: Result<CUDABackend, Error> = Result { try CUDABackend.gpu(options: CUDATestEnvironment.options.get()) }
  static var available: Bool { (try? backend.get()) != nil }
  static var reason: Comment {
    switch backend {
    case .success: return "a GPU is available"
    case .failure(let e): return Comment(rawValue: "no usable GPU: \(e)".prefix(300).description)
    }
  }
}

/// Every candidate of the GPU's table: the NVRTC kernels and cuDNN's convolutions.
let gpuCandidates: [KernelCandidate] = (try? GPU.backend.get()).map(KernelCandidate.all(of:)) ?? []

@Suite(.enabled(if: GPU.available, GPU.reason))
struct GPUTests {
  @Test func everyOpKindHasAKernel() throws {
    #expect(try GPU.backend.get().missingKernels.isEmpty)
  }

  /// Each candidate on its own on the GPU against the reference, on every case of its type's
  /// kinds at each case's dtypes (the emulator's `cases(of:)`), within the one tolerance table
  /// (`unet doctor --check` runs the same cases against the CPU backend).
  @Test(arguments: gpuCandidates.indices)
  func gpuCandidateMatchesReference(_ index: Int) throws {
    let candidate = gpuCandidates[index]
    let forced = CandidateBackend(try GPU.backend.get(), forcing: candidate)
    for (c, dtype) in cases(of: candidate) { expectConforms(OpCases.all[c], dtype: dtype, on: forced) }
    #expect(forced.accepted > 0 && forced.declined == 0, "\(candidate): accepted \(forced.accepted), declined \(forced.declined)")
  }

  /// Every case of the list runs on some candidate: none is left out of the enumeration above.
  @Test func everyCaseRunsOnACandidate() throws {
    let covered = Set(gpuCandidates.flatMap(cases(of:)).map { "\($0.0) \($0.1)" })
    for (i, c) in OpCases.all.enumerated() {
      for d in c.dtypes { #expect(covered.contains("\(i) \(d)"), "\(c) at \(d) runs on no candidate") }
    }
  }
}
