// MARK: - Element types

/// The element type of a tensor. Floating types compute in f32 on the CPU; f64 exists for the
/// reference backend's finite-difference checks.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
  case f64, f32, f16, bf16, i32, u8

  /// Bytes per element.
  public var byteSize: Int {
    switch self {
    case .f64: return 8
    case .f32, .i32: return 4
    case .f16, .bf16: return 2
    case .u8: return 1
    }
  }

  /// True for f64, f32, f16 and bf16.
  public var isFloatingPoint: Bool {
    switch self {
    case .f64, .f32, .f16, .bf16: return true
    case .i32, .u8: return false
    }
  }

  public var description: String { rawValue }

  /// x truncated toward zero as a 64-bit integer; 0 for NaN, infinities and values out of Int64's
  /// range (where C's cast is undefined).
  static func truncatedInteger(_ x: Double) -> Int64 {
    guard x.isFinite, abs(x) < 9.2e18 else { return 0 }
    return Int64(x.rounded(.towardZero))
  }

  /// Rounds a value to what this type can hold (round-to-nearest-even for floats, truncation
  /// toward zero and wrap-around for integers, as a C cast; 0 where a C cast is undefined).
  public func round(_ x: Double) -> Double {
    switch self {
    case .f64: return x
    case .f32: return Double(Float(x))
    case .f16: return Double(Float(Float16(Float(x))))
    case .bf16: return Double(BFloat16.toFloat(BFloat16.fromFloat(Float(x))))
    case .i32: return Double(Int32(truncatingIfNeeded: DType.truncatedInteger(x)))
    case .u8: return Double(UInt8(truncatingIfNeeded: DType.truncatedInteger(x)))
    }
  }
}

// MARK: - bfloat16 bits

/// Conversions between Float and bfloat16 bit patterns (the top 16 bits of an IEEE f32).
public enum BFloat16 {
  /// Rounds to nearest even; NaN stays NaN.
  @inline(__always) public static func fromFloat(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
    let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
  }

  @inline(__always) public static func toFloat(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
  }
}
