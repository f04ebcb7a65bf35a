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

/// One op applied to seeded random inputs: the unit of the backend conformance suites.
public struct OpCase: CustomStringConvertible, Sendable {
  public let kind: OpKind
  public let label: String
  public let inputs: [TensorType]
  public var range: Range<Double>
  /// Inputs whose gradients are compared; nil: the floating ones.
  public var differentiable: [Bool]?
  /// f32's by default; f16 and bf16 cases round every intermediate.
  public var tolerance: (atol: Double, rtol: Double)
  public let apply: @Sendable ([Tensor], any Backend) throws -> Tensor

  public init(
    kind: OpKind, label: String, inputs: [TensorType], range: Range<Double> = -1..<1, differentiable: [Bool]? = nil,
    tolerance: (atol: Double, rtol: Double) = (1e-5, 1e-4), apply: @escaping @Sendable ([Tensor], any Backend) throws -> Tensor
  ) {
    (self.kind, self.label, self.inputs, self.range, self.differentiable) = (kind, label, inputs, range, differentiable)
    (self.tolerance, self.apply) = (tolerance, apply)
  }

  public var description: String { "\(kind.rawValue) \(label)" }

  /// Expects this case on `backend` to match the reference, with inputs seeded by `index` and
  /// tolerances no tighter than the given floors.
  public func expectMatchesReference(
    on backend: any Backend, index: Int, atolAtLeast: Double = 0, rtolAtLeast: Double = 0,
    sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let hosts = inputs.enumerated().map { randomHost($0.element, seed: UInt64(100 * index + $0.offset), in: range) }
    try SegTestSupport.expectMatchesReference(
      on: backend, description, inputs: hosts, differentiable: differentiable,
      atol: max(tolerance.atol, atolAtLeast), rtol: max(tolerance.rtol, rtolAtLeast), sourceLocation: sourceLocation, apply)
  }
}
