import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - On a real GPU (skipped without one)

/// The CUDA backend on GPU 0, or nil (and the reason) on a machine without a usable GPU.
enum GPU {
  static let backend: Result<CUDABackend, Error> = Result { try CUDABackend.gpu() }
  static var available: Bool { (try? backend.get()) != nil }
  static var reason: Comment {
    switch backend {
    case .success: return "a GPU is available"
    case .failure(let e): return Comment(rawValue: "no usable GPU: \(e)".prefix(300).description)
    }
  }
}

/// Every case of the one list (SegCheck's `OpCases.all`) at each of its dtypes: (case index, dtype).
let gpuCases: [(Int, DType)] = OpCases.all.indices.flatMap { i in OpCases.all[i].dtypes.map { (i, $0) } }

@Suite(.enabled(if: GPU.available, GPU.reason))
struct GPUTests {
  @Test func everyOpKindHasAKernel() throws {
    #expect(try GPU.backend.get().missingKernels.isEmpty)
  }

  /// Every case on the GPU against the reference, within the one tolerance table (`unet doctor
  /// --check` runs the same cases against the CPU backend).
  @Test(arguments: gpuCases.indices)
  func gpuMatchesReference(_ index: Int) throws {
    let (c, dtype) = gpuCases[index]
    expectConforms(OpCases.all[c], dtype: dtype, on: try GPU.backend.get())
  }
}
