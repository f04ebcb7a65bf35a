import SegCore

// MARK: - Op cases

/// One op applied to seeded random inputs: the unit of the conformance check, run at each of its
/// dtypes. Every input takes the dtype the case runs at; `apply` gets that dtype too, for ops that
/// make a tensor of a given dtype (a baseline computing a half-precision case in f32 gets f32).
public struct OpCase: CustomStringConvertible, Sendable {
  public let kind: OpKind
  public let label: String
  /// The inputs' shapes.
  public let inputs: [Shape]
  /// Where input values are drawn from (uniformly).
  public var range: Range<Double>
  /// Inputs whose gradients are compared; nil: all of them.
  public var differentiable: [Bool]?
  /// The dtypes this case runs at.
  public var dtypes: [DType]
  public let apply: @Sendable (_ inputs: [Tensor], _ backend: any Backend, _ dtype: DType) throws -> Tensor

  /// Every floating dtype.
  public static let allFloating: [DType] = [.f32, .f16, .bf16, .f64]

  public init(
    kind: OpKind, label: String, inputs: [Shape], range: Range<Double> = -1..<1, differentiable: [Bool]? = nil,
    dtypes: [DType] = OpCase.allFloating,
    apply: @escaping @Sendable (_ inputs: [Tensor], _ backend: any Backend, _ dtype: DType) throws -> Tensor
  ) {
    (self.kind, self.label, self.inputs, self.range, self.differentiable) = (kind, label, inputs, range, differentiable)
    (self.dtypes, self.apply) = (dtypes, apply)
  }

  /// "conv2d valid 3x3, bias, relu".
  public var description: String { label.isEmpty ? kind.rawValue : "\(kind.rawValue) \(label)" }

  /// The input shapes as text, e.g. "[2,7,6,3] [3,3,3,5]".
  public var shapeText: String {
    inputs.isEmpty ? "(none)" : inputs.map { "[\($0.dims.map(String.init).joined(separator: ","))]" }.joined(separator: " ")
  }

  /// The seeded inputs at `dtype` (values drawn in `range`, rounded to the dtype).
  public func hostInputs(_ dtype: DType) -> [HostTensor] {
    let base = stableHash(description)
    return inputs.enumerated().map { i, shape in
      randomHost(TensorType(shape, dtype), seed: base &+ UInt64(i) &* 0x9E37_79B9, in: range)
    }
  }

  /// Which inputs get a gradient.
  var gradientMask: [Bool] { differentiable ?? inputs.map { _ in true } }
}
