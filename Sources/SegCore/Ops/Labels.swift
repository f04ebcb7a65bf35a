// MARK: - Public functions

/// The index of the largest element along `axis` (default: the last, the channels of NHWC), as i32,
/// with that axis removed: [N,H,W,C] -> [N,H,W]. Ties go to the first maximum; a NaN counts as
/// larger than any number, so the first NaN wins (as NumPy). Any dtype; no gradient.
public func argmax(_ x: Tensor, axis: Int = -1) throws -> Tensor {
  guard let a = x.shape.axis(axis) else {
    throw TensorError(op: "argmax", operands: [x.type], "axis \(axis) is out of range for rank \(x.shape.rank)")
  }
  return try Tensor.apply(ArgMax(axis: a), [x])
}

/// One-hot encoding of class labels (i32 or u8): appends an axis of size `classes` that is 1 at the
/// label and 0 elsewhere, [N,H,W] -> [N,H,W,classes]. A label outside 0..<classes is an error that
/// names it. No gradient.
public func oneHot(_ labels: Tensor, classes: Int, dtype: DType = .f32) throws -> Tensor {
  try Tensor.apply(OneHot(classes: classes, dtype: dtype), [labels])
}

// MARK: - ArgMax

/// Index of the first maximum along a normalised axis.
public struct ArgMax: Primitive {
  public let axis: Int
  public static let kinds: [OpKind] = [.argmax]
  public var description: String { "argmax(axis: \(axis))" }

  public init(axis: Int) { self.axis = axis }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    let s = inputs[0].shape
    guard (0..<s.rank).contains(axis) else {
      throw TensorError(op: "argmax", operands: inputs, "axis \(axis) is out of range for rank \(s.rank)")
    }
    guard s.dims[axis] > 0 else {
      throw TensorError(op: "argmax", operands: inputs, "axis \(axis) is empty: there is no maximum")
    }
    var dims = s.dims
    dims.remove(at: axis)
    return TensorType(Shape(dims), .i32)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] { [nil] }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles
    let dims = inputs[0].shape.dims
    let n = dims[axis]
    let inner = dims[(axis + 1)...].reduce(1, *)
    let outer = dims[..<axis].reduce(1, *)
    var out = [Double](repeating: 0, count: outer * inner)
    for o in 0..<outer {
      for i in 0..<inner {
        let base = o * n * inner + i
        var best = 0
        for k in 1..<n {
          let v = x[base + k * inner], b = x[base + best * inner]
          if b.isNaN { break }
          if v.isNaN || v > b { best = k }
        }
        out[o * inner + i] = Double(best)
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - OneHot

/// One-hot encoding of integer labels into `classes` values of `dtype` along a new last axis.
public struct OneHot: Primitive {
  public let classes: Int
  public let dtype: DType
  public static let kinds: [OpKind] = [.oneHot]
  public var description: String { "oneHot(classes: \(classes), dtype: \(dtype))" }

  public init(classes: Int, dtype: DType) {
    self.classes = classes
    self.dtype = dtype
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    guard inputs[0].dtype == .i32 || inputs[0].dtype == .u8 else {
      throw TensorError(op: "oneHot", operands: inputs, "labels must be i32 or u8; use cast(_:to:)")
    }
    guard classes >= 1 else {
      throw TensorError(op: "oneHot", operands: inputs, "classes must be at least 1, got \(classes)")
    }
    return TensorType(Shape(inputs[0].shape.dims + [classes]), dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] { [nil] }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    // The shape rule cannot see values, so a bad label is caught here.
    let labels = inputs[0].doubles
    var out = [Double](repeating: 0, count: output.shape.count)
    for (i, label) in labels.enumerated() {
      guard label >= 0, label < Double(classes) else {
        throw TensorError(
          op: "oneHot", operands: [inputs[0].type],
          "label \(Int(label)) at index \(i) is outside 0..<\(classes)")
      }
      out[i * classes + Int(label)] = 1
    }
    return HostTensor(type: output, doubles: out)
  }
}
