import SegCore
import Testing

// MARK: - A backend against the reference

/// Runs `f` on the reference backend and on `backend` with the same inputs, and expects the same
/// output and the same gradients of the inputs marked `differentiable` (default: the floating ones)
/// under one seeded cotangent, within atol + rtol * |reference|.
public func expectMatchesReference(
  on backend: any Backend, _ what: String, inputs: [HostTensor], differentiable: [Bool]? = nil,
  atol: Double = 1e-5, rtol: Double = 1e-4, seed: UInt64 = 99, sourceLocation: SourceLocation = #_sourceLocation,
  _ f: ([Tensor], any Backend) throws -> Tensor
) throws {
  let mask = differentiable ?? inputs.map { $0.dtype.isFloatingPoint }
  func run(_ b: any Backend) throws -> (HostTensor, [HostTensor]) {
    let xs = try inputs.map { try Tensor($0, on: b) }
    let y = try f(xs, b)
    let targets = xs.indices.filter { mask[$0] }.map { xs[$0] }
    guard y.dtype.isFloatingPoint, !targets.isEmpty else { return (try y.host(), []) }
    let cotangent = try Tensor(randomHost(y.type, seed: seed), on: b)
    return (try y.host(), try gradients(of: y, wrt: targets, seed: cotangent).map { try $0.host() })
  }
  let (yRef, gRef) = try run(ReferenceBackend.shared)
  let (y, g) = try run(backend)
  #expect(y.dtype == yRef.dtype, "\(what): output dtype \(y.dtype) on \(backend.name), \(yRef.dtype) on the reference", sourceLocation: sourceLocation)
  expectClose(y, yRef, atol: atol, rtol: rtol, "\(what): output on \(backend.name)", sourceLocation: sourceLocation)
  for (i, (a, r)) in zip(g, gRef).enumerated() {
    expectClose(a, r, atol: atol, rtol: rtol, "\(what): gradient \(i) on \(backend.name)", sourceLocation: sourceLocation)
  }
}

// MARK: - Op cases

/// Expects every comparison of op case `c` at `dtype` on `backend` against `baseline` (default: the
/// reference backend) to pass `OpConformance`'s check, each failure naming the op, dtype, shapes,
/// direction, error and first mismatch.
public func expectConforms(
  _ c: OpCase, dtype: DType, on backend: any Backend, baseline: any Backend = ReferenceBackend.shared,
  options: OpConformance.Options = OpConformance.Options(), sourceLocation: SourceLocation = #_sourceLocation
) {
  let rows = OpConformance.check(c, dtype: dtype, candidate: backend, baseline: baseline, options: options)
  #expect(!rows.isEmpty, "\(c) \(dtype): nothing compared", sourceLocation: sourceLocation)
  for r in rows where !r.passed {
    Issue.record("\(r.failureText)", sourceLocation: sourceLocation)
  }
}
