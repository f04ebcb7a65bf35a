// SeededRandom, randomHost, OpCase and the op-case list live in SegCheck (`unet doctor --check`
// uses them too); re-exported so that every test that imports SegTestSupport has them.
@_exported import SegCheck
import SegCore
import Testing

// MARK: - Comparison

/// The largest |a - b| / (atol/rtol + rtol * |b|)-style error: passes when <= 1.
/// Returns the worst index and values so that a failure shows where it broke.
public func compare(_ a: [Double], _ b: [Double], atol: Double, rtol: Double)
  -> (ok: Bool, worst: Int, ratio: Double)
{
  guard a.count == b.count else { return (false, -1, .infinity) }
  var worst = 0
  var ratio = 0.0
  for i in a.indices {
    let allowed = atol + rtol * abs(b[i])
    let r = a[i].isNaN || b[i].isNaN ? (a[i].isNaN && b[i].isNaN ? 0 : .infinity) : abs(a[i] - b[i]) / allowed
    if r > ratio {
      ratio = r
      worst = i
    }
  }
  return (ratio <= 1, worst, ratio)
}

/// Expects `actual` to equal `expected` elementwise within atol + rtol*|expected|, printing the first
/// values and the largest difference on failure.
public func expectClose(
  _ actual: HostTensor, _ expected: HostTensor, atol: Double = 1e-5, rtol: Double = 1e-4,
  _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape) vs \(expected.shape)", sourceLocation: sourceLocation)
  guard actual.shape == expected.shape else { return }
  let a = actual.doubles, e = expected.doubles
  let (ok, worst, ratio) = compare(a, e, atol: atol, rtol: rtol)
  #expect(
    ok,
    """
    \(what): largest difference at \(worst): \(worst >= 0 ? a[worst] : .nan) vs \(worst >= 0 ? e[worst] : .nan) \
    (\(ratio)x the tolerance); first values \(Array(a.prefix(4))) vs \(Array(e.prefix(4)))
    """, sourceLocation: sourceLocation)
}

// MARK: - Gradient check

/// Checks an op's VJP against central finite differences on the reference backend in f64, by the
/// inner-product identity <J t, c> = <t, J^T c> for random tangents t and cotangent c.
/// `inputs` are the points; `differentiable` marks which inputs to perturb (default: all floating).
public func checkVJP(
  _ what: String, inputs: [HostTensor], differentiable: [Bool]? = nil, eps: Double = 1e-6,
  tolerance: Double = 1e-6, seed: UInt64 = 7, sourceLocation: SourceLocation = #_sourceLocation,
  _ f: ([Tensor]) throws -> Tensor
) throws {
  let backend = ReferenceBackend.shared
  let xs = try inputs.map { try Tensor($0, on: backend) }
  let mask = differentiable ?? inputs.map { $0.dtype.isFloatingPoint }
  let y = try f(xs)
  var rng = SeededRandom(seed: seed)
  let c = HostTensor(type: y.type, doubles: rng.doubles(y.shape.count))
  let tangents = inputs.enumerated().map { i, x in
    HostTensor(type: x.type, doubles: mask[i] ? rng.doubles(x.shape.count) : [Double](repeating: 0, count: x.shape.count))
  }

  // <t, J^T c> from the VJP.
  let targets = xs.enumerated().filter { mask[$0.offset] }.map(\.element)
  let grads = try gradients(of: y, wrt: targets, seed: Tensor(c, on: backend))
  var vjpSide = 0.0
  var g = 0
  for i in inputs.indices where mask[i] {
    vjpSide += dot(tangents[i].doubles, try grads[g].host().doubles)
    g += 1
  }

  // <J t, c> from central differences.
  func shifted(_ s: Double) throws -> [Double] {
    let moved = try inputs.indices.map { i -> Tensor in
      guard mask[i] else { return xs[i] }
      let v = zip(inputs[i].doubles, tangents[i].doubles).map { $0 + s * $1 }
      return try Tensor(HostTensor(type: inputs[i].type, doubles: v), on: backend)
    }
    return try withoutGradients { try f(moved).host().doubles }
  }
  let plus = try shifted(eps), minus = try shifted(-eps)
  let jvpSide = dot(zip(plus, minus).map { ($0 - $1) / (2 * eps) }, c.doubles)

  let scale = max(1, abs(jvpSide), abs(vjpSide))
  #expect(
    abs(jvpSide - vjpSide) <= tolerance * scale,
    "\(what): <J t, c> = \(jvpSide) by finite differences, <t, J^T c> = \(vjpSide) by the VJP",
    sourceLocation: sourceLocation)
}

private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
