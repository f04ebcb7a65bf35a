import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - CPU against reference

/// Runs `f` on the reference and the CPU backends on the same inputs and expects the same output
/// and, with `withGradients`, the same gradient for every input under one seeded cotangent.
func expectCPUMatchesReference(
  _ what: String, inputs: [HostTensor], withGradients: Bool = true, atol: Double = 2e-5, rtol: Double = 1e-4,
  seed: UInt64 = 99, sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) throws -> Tensor
) throws {
  try expectMatchesReference(
    on: CPUBackend.shared, what, inputs: inputs, differentiable: inputs.map { _ in withGradients }, atol: atol, rtol: rtol,
    seed: seed, sourceLocation: sourceLocation) { xs, _ in try f(xs) }
}

/// A seeded random f32 tensor of `shape`.
func random(_ shape: Shape, seed: UInt64, in range: Range<Double> = -1..<1) -> HostTensor {
  randomHost(TensorType(shape, .f32), seed: seed, in: range)
}
