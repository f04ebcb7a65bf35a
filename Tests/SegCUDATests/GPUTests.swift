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

private func f32(_ dims: Shape) -> TensorType { TensorType(dims, .f32) }

/// The convolution cases (cuDNN), as the CPU backend's conformance tests have them.
let gpuConvolutionCases: [OpCase] = [
  OpCase(kind: .conv2d, label: "valid 3x3, bias, relu", inputs: [f32([2, 7, 6, 3]), f32([3, 3, 3, 5]), f32([5])]) { x, _ in
    try conv2d(x[0], x[1], bias: x[2], activation: .relu)
  },
  OpCase(kind: .conv2d, label: "same, stride 2 (asymmetric)", inputs: [f32([1, 9, 8, 4]), f32([3, 3, 4, 6])]) { x, _ in
    try conv2d(x[0], x[1], strides: (2, 2), padding: .same)
  },
  OpCase(kind: .conv2d, label: "same 3x3, f16", inputs: [TensorType([2, 8, 8, 4], .f16), TensorType([3, 3, 4, 8], .f16)], tolerance: (2e-2, 2e-2)) { x, _ in
    try conv2d(x[0], x[1], padding: .same)
  },
  OpCase(kind: .conv2dBackwardData, label: "transposed 3x3 stride 2 same", inputs: [f32([2, 4, 3, 6]), f32([3, 3, 5, 6]), f32([5])]) { x, _ in
    try conv2dTranspose(x[0], x[1], bias: x[2], activation: .relu)
  },
  OpCase(kind: .conv2dBackwardData, label: "transposed 2x2 stride 2 valid", inputs: [f32([1, 3, 5, 4]), f32([2, 2, 3, 4])]) { x, _ in
    try conv2dTranspose(x[0], x[1], padding: .valid)
  },
  OpCase(kind: .conv2dBackwardFilter, label: "explicit asymmetric padding", inputs: [f32([2, 6, 5, 3]), f32([2, 5, 6, 4])]) { x, _ in
    try conv2dBackwardFilter(
      x[0], x[1], kernelSize: (3, 2),
      geometry: ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 0, left: 1, right: 1)))
  },
]

@Suite(.enabled(if: GPU.available, GPU.reason))
struct GPUTests {
  @Test func everyOpKindHasAKernel() throws {
    #expect(try GPU.backend.get().missingKernels.isEmpty)
  }

  /// Every case of the emulator suite and the convolutions, on the GPU against the reference
  /// (looser tolerances: the GPU's exp and log, and cuDNN's summation order).
  @Test(arguments: (cudaCases + gpuConvolutionCases).indices)
  func gpuMatchesReference(_ index: Int) throws {
    try (cudaCases + gpuConvolutionCases)[index].expectMatchesReference(
      on: try GPU.backend.get(), index: index, atolAtLeast: 1e-4, rtolAtLeast: 1e-3)
  }
}
