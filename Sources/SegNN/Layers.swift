import SegCore

// MARK: - Convolution layers

/// A 3x3 (or any square) convolution with bias and optional fused ReLU; kernel HWIO.
public struct ConvLayer {
  public let kernel: Parameter
  public let bias: Parameter
  public let padding: ConvPadding
  public let activation: FusedActivation

  /// Glorot-uniform kernel [k,k,in,out] and zero bias [out] of `dtype`, made on `backend`.
  public init(
    _ name: String, kernelSize k: Int, in cin: Int, out cout: Int, padding: ConvPadding,
    activation: FusedActivation, seed: UInt64, stream: UInt64, dtype: DType, on backend: any Backend
  ) throws {
    let init_ = glorotUniform(shape: [k, k, cin, cout], fanIn: k * k * cin, fanOut: k * k * cout, seed: seed, stream: stream)
    kernel = Parameter(name + ".kernel", try Tensor(init_.converted(to: dtype), on: backend))
    bias = Parameter(name + ".bias", try Tensor(repeating: 0, shape: [cout], dtype: dtype, on: backend))
    self.padding = padding
    self.activation = activation
  }

  /// x [N,H,W,in] -> [N,H',W',out], computed in `computeType` (nil: the kernel's dtype). Casting x,
  /// the kernel and the bias adds no op where they already have that type; the casts' gradients
  /// bring the kernel's and bias's back to their own (master) type.
  public func callAsFunction(_ x: Tensor, computeType: DType? = nil) throws -> Tensor {
    let t = computeType ?? kernel.value.dtype
    return try conv2d(cast(x, to: t), cast(kernel.value, to: t), bias: cast(bias.value, to: t), padding: padding, activation: activation)
  }

  public var parameters: [Parameter] { [kernel, bias] }
}

/// A stride-2 transposed convolution ('same' padding, as Keras) with bias and ReLU;
/// kernel [k,k,out,in] as Keras's Conv2DTranspose.
public struct UpConvLayer {
  public let kernel: Parameter
  public let bias: Parameter

  /// Glorot-uniform kernel and zero bias of `dtype`, made on `backend`.
  public init(
    _ name: String, kernelSize k: Int, in cin: Int, out cout: Int, seed: UInt64, stream: UInt64, dtype: DType,
    on backend: any Backend
  ) throws {
    let init_ = glorotUniform(shape: [k, k, cout, cin], fanIn: k * k * cout, fanOut: k * k * cin, seed: seed, stream: stream)
    kernel = Parameter(name + ".kernel", try Tensor(init_.converted(to: dtype), on: backend))
    bias = Parameter(name + ".bias", try Tensor(repeating: 0, shape: [cout], dtype: dtype, on: backend))
  }

  /// x [N,H,W,in] -> [N,2H,2W,out], computed in `computeType` (nil: the kernel's dtype), as ConvLayer.
  public func callAsFunction(_ x: Tensor, computeType: DType? = nil) throws -> Tensor {
    let t = computeType ?? kernel.value.dtype
    return try conv2dTranspose(cast(x, to: t), cast(kernel.value, to: t), bias: cast(bias.value, to: t), strides: (2, 2),
                               padding: .same, activation: .relu)
  }

  public var parameters: [Parameter] { [kernel, bias] }
}
