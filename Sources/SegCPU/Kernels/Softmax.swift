import Foundation
import SegCore

// MARK: - Softmax

/// softmax and logSoftmax over the last axis, f32 or f64, stably: each row's maximum is subtracted
/// before exponentiating, and the row's sum of exponentials is accumulated in Double.
func softmaxKernel(_ op: Softmax, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  let kind = try floatKind(op, inputs, output)
  let shape = output.type.shape
  guard shape.rank >= 1 else {
    throw TensorError(op: op.kind.rawValue, operands: [inputs[0].type], "needs rank >= 1")
  }
  let n = shape[-1]
  guard n > 0 else { return }
  let rows = shape.count / n
  func run<T: KernelFloat>(_: T.Type) {
    let x = inputs[0].elements(T.self), out = output.elements(T.self)
    // Each row costs n exponentials, ~20 adds each.
    Parallel.forEach(rows, grain: max(1, Parallel.defaultGrain / (n * 16)), align: 1) { range in
      for r in range { softmaxRow(x + r * n, out + r * n, n, log: op.log) }
    }
  }
  switch kind {
  case .f32: run(Float.self)
  case .f64: run(Double.self)
  }
}

/// One row of n elements: out = exp(x - max) / sum, or x - max - log(sum).
@inline(__always)
func softmaxRow<T: KernelFloat>(_ x: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ n: Int, log: Bool) {
  var m = x[0]
  for i in 1..<max(1, n) where x[i] > m { m = x[i] }
  var total = 0.0
  if log {
    for i in 0..<n { total += Double(T.cExp(x[i] - m)) }
    let logTotal = T(Foundation.log(total))
    for i in 0..<n { out[i] = (x[i] - m) - logTotal }
  } else {
    for i in 0..<n {
      let e = T.cExp(x[i] - m)
      out[i] = e
      total += Double(e)
    }
    let t = T(total)
    for i in 0..<n { out[i] /= t }
  }
}
