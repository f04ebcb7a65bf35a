import SegCore

// MARK: - One table of tolerances

/// The largest `RelativeError` each dtype may show, forward and backward, against its baseline.
///
/// Half precision is judged in units of its rounding error u (f16: u = 2^-11, bf16: u = 2^-8): a
/// kernel computing in f32 and rounding its output is within 1 u, a backward pass chains a few such
/// ops, and the gradient of a reduction cancels; 20 u leaves room for that, while a wrong kernel is
/// off by O(1). f32 allows for another summation order (cuDNN, blocked reductions) over the few
/// hundred terms of the checked shapes, and for the GPU's exp and log, a few ulp off. TF32 Tensor
/// Cores round the convolutions' operands to 10 mantissa bits (u = 2^-11) and sum hundreds of such
/// products. f64 runs against the reference backend's Double arithmetic.
public struct ToleranceTable: Codable, Sendable, Equatable {
  public var f64 = 1e-12
  public var f32 = 1e-4
  /// f32 convolutions computed with TF32 Tensor Cores.
  public var tf32 = 1e-2
  public var f16 = 1e-2
  public var bf16 = 8e-2

  public init() {}

  /// The table above.
  public static let standard = ToleranceTable()

  /// The tolerance of an op of `kind` run at `dtype` whose output has dtype `output`: 0 (exact)
  /// for integer outputs, the TF32 entry for f32 convolutions when `tf32` is on.
  public func tolerance(_ kind: OpKind, dtype: DType, output: DType, tf32 useTF32: Bool) -> Double {
    guard output.isFloatingPoint else { return 0 }
    switch dtype {
    case .f64: return f64
    case .f32: return useTF32 && kind.isConvolution ? tf32 : f32
    case .f16: return f16
    case .bf16: return bf16
    case .i32, .u8: return 0
    }
  }
}

extension OpKind {
  /// conv2d and its two backward ops: the ops that TF32 Tensor Cores run.
  public var isConvolution: Bool { self == .conv2d || self == .conv2dBackwardData || self == .conv2dBackwardFilter }
}
