// MARK: - Shape

/// The dimensions of a tensor, outermost first (row-major). Images are NHWC, filters HWIO.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
  public var dims: [Int]

  public init(_ dims: [Int]) { self.dims = dims }
  public init(arrayLiteral elements: Int...) { self.dims = elements }

  /// Number of dimensions.
  public var rank: Int { dims.count }
  /// Number of elements (1 for a scalar).
  public var count: Int { dims.reduce(1, *) }
  public subscript(i: Int) -> Int {
    get { dims[i < 0 ? dims.count + i : i] }
    set { dims[i < 0 ? dims.count + i : i] = newValue }
  }

  /// Row-major strides in elements.
  public var strides: [Int] {
    var s = [Int](repeating: 1, count: dims.count)
    var acc = 1
    for i in stride(from: dims.count - 1, through: 0, by: -1) {
      s[i] = acc
      acc *= dims[i]
    }
    return s
  }

  public var description: String { "[" + dims.map(String.init).joined(separator: ",") + "]" }

  /// Normalises a possibly negative axis; nil when out of range.
  public func axis(_ a: Int) -> Int? {
    let n = a < 0 ? a + rank : a
    return (0..<rank).contains(n) ? n : nil
  }
}

// MARK: - Tensor type

/// Shape and element type of a tensor: what an op's shape rule computes.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
  public var shape: Shape
  public var dtype: DType
  public init(_ shape: Shape, _ dtype: DType) {
    self.shape = shape
    self.dtype = dtype
  }
  /// Written as the error messages show it, e.g. `f32[1,8,8,3]`.
  public var description: String { "\(dtype)\(shape)" }
}
