import Foundation

// MARK: - Public functions

/// Softmax over the last axis (the channels of NHWC logits): exp(x - max) / sum(exp(x - max)).
/// Same shape as `x`, rank >= 1.
public func softmax(_ x: Tensor) throws -> Tensor { try Tensor.apply(Softmax(log: false), [x]) }

/// Log-softmax over the last axis: x - max - log(sum(exp(x - max))). Same shape as `x`, rank >= 1.
public func logSoftmax(_ x: Tensor) throws -> Tensor { try Tensor.apply(Softmax(log: true), [x]) }

// MARK: - Primitive

/// Softmax or log-softmax of a floating tensor over its last axis, computed stably (the row's
/// maximum is subtracted before exponentiating, so large logits do not overflow).
public struct Softmax: Primitive {
  /// True for log-softmax.
  public let log: Bool

  public init(log: Bool) { self.log = log }

  public static let kinds: [OpKind] = [.softmax, .logSoftmax]

  public var kind: OpKind { log ? .logSoftmax : .softmax }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    let dtype = try expectSameFloatType(inputs)
    guard inputs[0].shape.rank >= 1 else {
      throw TensorError(op: kind.rawValue, operands: inputs, "needs rank >= 1: it normalises over the last axis")
    }
    return TensorType(inputs[0].shape, dtype)
  }

  public func vjp(_ inputs: [Tensor], output y: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard needed[0] else { return [nil] }
    if log {
      // d/dx of log-softmax: g - softmax(x) * sum(g), and softmax(x) = exp(y).
      return [try g - exp(y) * sum(g, axes: [-1], keepDims: true)]
    }
    return [try y * (g - sum(g * y, axes: [-1], keepDims: true))]
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles
    let n = output.shape[-1]
    var out = [Double](repeating: 0, count: x.count)
    guard n > 0 else { return HostTensor(type: output, doubles: out) }
    for row in stride(from: 0, to: x.count, by: n) {
      let r = row..<(row + n)
      let m = x[r].max()!
      var total = 0.0
      for i in r { total += Foundation.exp(x[i] - m) }
      if log {
        let logTotal = Foundation.log(total)
        for i in r { out[i] = x[i] - m - logTotal }
      } else {
        for i in r { out[i] = Foundation.exp(x[i] - m) / total }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}
