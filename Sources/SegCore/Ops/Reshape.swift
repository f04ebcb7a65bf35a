// MARK: - Public function

/// The same elements in row-major order with another shape of equal count; one dimension may be -1.
public func reshape(_ x: Tensor, _ shape: Shape) throws -> Tensor {
  var dims = shape.dims
  if let i = dims.firstIndex(of: -1) {
    let known = dims.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
    guard known > 0, x.shape.count % known == 0 else {
      throw TensorError(op: "reshape", operands: [x.type], "cannot infer -1 in \(shape)")
    }
    dims[i] = x.shape.count / known
  }
  if Shape(dims) == x.shape { return x }
  return try Tensor.apply(Reshape(shape: Shape(dims)), [x])
}

// MARK: - Primitive

/// Reinterprets the elements with a new shape.
public struct Reshape: Primitive {
  public let shape: Shape
  public static let kinds: [OpKind] = [.reshape]
  public init(shape: Shape) { self.shape = shape }
  public var description: String { "reshape(\(shape))" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    guard shape.dims.allSatisfy({ $0 >= 0 }), shape.count == inputs[0].shape.count else {
      throw TensorError(op: "reshape", operands: inputs, "cannot reshape to \(shape): element counts differ")
    }
    return TensorType(shape, inputs[0].dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    [try needed[0] ? reshape(g, inputs[0].shape) : nil]
  }

  /// The VJP needs only the input's type.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    inputs[0].reshaped(shape)
  }
}
