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
  func run(_ backend: any Backend) throws -> (HostTensor, [HostTensor]) {
    let xs = try inputs.map { try Tensor($0, on: backend) }
    let y = try f(xs)
    guard withGradients else { return (try y.host(), []) }
    let cotangent = try Tensor(randomHost(y.type, seed: seed), on: backend)
    let grads = try gradients(of: y, wrt: xs, seed: cotangent)
    return (try y.host(), try grads.map { try $0.host() })
  }
  let (yRef, gRef) = try run(ReferenceBackend.shared)
  let (yCPU, gCPU) = try run(CPUBackend.shared)
  expectClose(yCPU, yRef, atol: atol, rtol: rtol, "\(what): output", sourceLocation: sourceLocation)
  for (i, (g, r)) in zip(gCPU, gRef).enumerated() {
    expectClose(g, r, atol: atol, rtol: rtol, "\(what): gradient of input \(i)", sourceLocation: sourceLocation)
  }
}

/// A seeded random f32 tensor of `shape`.
func random(_ shape: Shape, seed: UInt64, in range: Range<Double> = -1..<1) -> HostTensor {
  randomHost(TensorType(shape, .f32), seed: seed, in: range)
}

/// Whether the CPU backend has a kernel for `kind` (the Swift kernels land separately).
func cpuHas(_ kinds: OpKind...) -> Bool { kinds.allSatisfy { CPUBackend.shared.kernel(for: $0) != nil } }
