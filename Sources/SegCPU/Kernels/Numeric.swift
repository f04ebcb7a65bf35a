import Foundation
import SegCore

// MARK: - Element types the arithmetic kernels compute in

/// A floating type the Swift kernels compute in (f32, and f64 for the reference-precision path).
/// Kernels are generic over it and the optimiser specialises them for each.
protocol KernelFloat: BinaryFloatingPoint, SIMDScalar, Codable {
  /// e^x, from the C library (within an ulp).
  static func cExp(_ x: Self) -> Self
  /// Natural logarithm, from the C library (within an ulp).
  static func cLog(_ x: Self) -> Self
}

extension Float: KernelFloat {
  @inline(__always) static func cExp(_ x: Float) -> Float { Foundation.expf(x) }
  @inline(__always) static func cLog(_ x: Float) -> Float { Foundation.logf(x) }
}

extension Double: KernelFloat {
  @inline(__always) static func cExp(_ x: Double) -> Double { Foundation.exp(x) }
  @inline(__always) static func cLog(_ x: Double) -> Double { Foundation.log(x) }
}

/// The vector the kernels' inner loops step by.
typealias Vec<T: KernelFloat> = SIMD8<T>

// MARK: - Unaligned vector access

extension UnsafePointer where Pointee: KernelFloat {
  /// Eight elements starting at `i`.
  @inline(__always) func vector(at i: Int) -> Vec<Pointee> {
    UnsafeRawPointer(self + i).loadUnaligned(as: Vec<Pointee>.self)
  }
}

extension UnsafeMutablePointer where Pointee: KernelFloat {
  /// Writes eight elements starting at `i`.
  @inline(__always) func store(_ v: Vec<Pointee>, at i: Int) {
    UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: Vec<Pointee>.self)
  }

  /// Adds `count` elements of `other` into these, eight at a time.
  @inline(__always) func add(_ other: UnsafePointer<Pointee>, count: Int) {
    var i = 0
    while i + Vec<Pointee>.scalarCount <= count {
      store(UnsafePointer(self).vector(at: i) + other.vector(at: i), at: i)
      i += Vec<Pointee>.scalarCount
    }
    while i < count {
      self[i] += other[i]
      i += 1
    }
  }
}

// MARK: - Operand checks

/// Which arithmetic type a kernel computes in.
enum FloatKind { case f32, f64 }

/// The arithmetic type of the operands and output (all f32 or all f64, as the shape rules
/// promise), or an error naming the op and the operand types: the Swift kernels compute f16 and
/// bf16 only through a cast.
func floatKind<P: Primitive>(_ op: P, _ inputs: [PlainOperand], _ output: PlainOutput) throws -> FloatKind {
  let types = inputs.map(\.type)
  let dtype = output.type.dtype
  guard types.allSatisfy({ $0.dtype == dtype }) else {
    throw TensorError(
      op: op.kind.rawValue, operands: types, "the CPU kernel needs operands of the output's dtype \(dtype)")
  }
  switch dtype {
  case .f32: return .f32
  case .f64: return .f64
  default:
    throw TensorError(
      op: op.kind.rawValue, operands: types,
      "the CPU kernel computes in f32 or f64, not \(dtype); cast the operands first")
  }
}

/// Checks that the backend passed `n` inputs, as the shape rule demands.
func expectInputs<P: Primitive>(_ op: P, _ inputs: [PlainOperand], _ n: Int) throws {
  guard inputs.count == n else {
    throw TensorError(
      op: op.kind.rawValue, operands: inputs.map(\.type), "the CPU kernel expects \(n) operands, got \(inputs.count)")
  }
}

extension PlainOperand {
  /// The elements as `T` (the caller has checked the dtype).
  @inline(__always) func elements<T>(_: T.Type) -> UnsafePointer<T> { pointer.assumingMemoryBound(to: T.self) }
}

extension PlainOutput {
  /// The elements as `T` (the caller has checked the dtype).
  @inline(__always) func elements<T>(_: T.Type) -> UnsafeMutablePointer<T> {
    pointer.assumingMemoryBound(to: T.self)
  }
}
