// MARK: - Public function

/// The elements of `x` converted to `dtype`, same shape. Floats round to nearest even; to an integer
/// type a value is truncated toward zero and wraps around as a C cast (NaN and infinities give 0),
/// as `DType.round`. Casting to x's own dtype returns x.
public func cast(_ x: Tensor, to dtype: DType) throws -> Tensor {
  if x.dtype == dtype { return x }
  return try Tensor.apply(Cast(dtype: dtype), [x])
}

// MARK: - Primitive

/// Conversion between any two dtypes. Differentiable only from a floating type to a floating type,
/// where the gradient is the cotangent cast back; integers carry no gradient.
public struct Cast: Primitive {
  public let dtype: DType
  public static let kinds: [OpKind] = [.cast]
  public var description: String { "cast(to: \(dtype))" }

  public init(dtype: DType) { self.dtype = dtype }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    return TensorType(inputs[0].shape, dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    let from = inputs[0].dtype
    guard needed[0], from.isFloatingPoint, dtype.isFloatingPoint else { return [nil] }
    return [try cast(g, to: from)]
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    inputs[0].converted(to: dtype)
  }
}
