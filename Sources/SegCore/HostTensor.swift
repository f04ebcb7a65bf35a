// MARK: - Host data

/// Elements of a host tensor, row-major, in their own type.
public enum HostData: Sendable {
  case f64([Double])
  case f32([Float])
  case f16([Float16])
  case bf16([UInt16])
  case i32([Int32])
  case u8([UInt8])

  var count: Int {
    switch self {
    case .f64(let a): return a.count
    case .f32(let a): return a.count
    case .f16(let a): return a.count
    case .bf16(let a): return a.count
    case .i32(let a): return a.count
    case .u8(let a): return a.count
    }
  }

  var dtype: DType {
    switch self {
    case .f64: return .f64
    case .f32: return .f32
    case .f16: return .f16
    case .bf16: return .bf16
    case .i32: return .i32
    case .u8: return .u8
    }
  }
}

// MARK: - Host tensor

/// A tensor's values in host memory, row-major (NHWC for images): what goes into and comes out of
/// a backend, and what the reference kernels compute on.
public struct HostTensor: Sendable, CustomStringConvertible {
  public let shape: Shape
  public let data: HostData

  public var dtype: DType { data.dtype }
  public var type: TensorType { TensorType(shape, dtype) }

  /// Wraps data whose count must equal the shape's element count.
  public init(shape: Shape, data: HostData) throws {
    guard shape.dims.allSatisfy({ $0 >= 0 }) else {
      throw TensorError(op: "tensor", "negative dimension in shape \(shape)")
    }
    guard data.count == shape.count else {
      throw TensorError(
        op: "tensor", "shape \(shape) needs \(shape.count) elements, got \(data.count)")
    }
    self.shape = shape
    self.data = data
  }

  /// Values as Double, converted from any type (what the reference kernels compute in).
  public var doubles: [Double] {
    switch data {
    case .f64(let a): return a
    case .f32(let a): return a.map(Double.init)
    case .f16(let a): return a.map { Double(Float($0)) }
    case .bf16(let a): return a.map { Double(BFloat16.toFloat($0)) }
    case .i32(let a): return a.map(Double.init)
    case .u8(let a): return a.map(Double.init)
    }
  }

  /// Values as Float, converted from any type.
  public var floats: [Float] {
    switch data {
    case .f32(let a): return a
    case .f64(let a): return a.map(Float.init)
    case .f16(let a): return a.map(Float.init)
    case .bf16(let a): return a.map(BFloat16.toFloat)
    case .i32(let a): return a.map(Float.init)
    case .u8(let a): return a.map(Float.init)
    }
  }

  /// Builds a tensor of `type` from Double values, rounding each to the type (as `DType.round`).
  public init(type: TensorType, doubles v: [Double]) {
    precondition(v.count == type.shape.count, "HostTensor: element count does not match shape")
    self.shape = type.shape
    switch type.dtype {
    case .f64: data = .f64(v)
    case .f32: data = .f32(v.map { Float($0) })
    case .f16: data = .f16(v.map { Float16(Float($0)) })
    case .bf16: data = .bf16(v.map { BFloat16.fromFloat(Float($0)) })
    case .i32: data = .i32(v.map { Int32(DType.i32.round($0)) })
    case .u8: data = .u8(v.map { UInt8(DType.u8.round($0)) })
    }
  }

  /// An f32 tensor.
  public init(shape: Shape, floats: [Float]) throws {
    try self.init(shape: shape, data: .f32(floats))
  }

  /// All elements equal to `value`.
  public init(type: TensorType, repeating value: Double) {
    self.init(type: type, doubles: [Double](repeating: value, count: type.shape.count))
  }

  /// Converts to another element type (as `DType.round`).
  public func converted(to dtype: DType) -> HostTensor {
    if dtype == self.dtype { return self }
    if dtype == .f32 { return try! HostTensor(shape: shape, data: .f32(floats)) }
    return HostTensor(type: TensorType(shape, dtype), doubles: doubles)
  }

  /// Same elements, another shape of equal count.
  public func reshaped(_ s: Shape) -> HostTensor {
    precondition(s.count == shape.count)
    return try! HostTensor(shape: s, data: data)
  }

  public var description: String {
    let v = doubles
    let head = v.prefix(8).map { String(format6($0)) }.joined(separator: ", ")
    return "\(type)(\(head)\(v.count > 8 ? ", ..." : ""))"
  }
}

/// Short decimal text for a value, without Foundation.
func format6(_ x: Double) -> String {
  if x == x.rounded() && abs(x) < 1e9 { return String(Int(x)) }
  let scaled = (x * 1e6).rounded() / 1e6
  return String(scaled)
}
