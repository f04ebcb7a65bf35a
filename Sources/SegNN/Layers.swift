import SegCore

// MARK: - Convolution layers

/// A 3x3 (or any square) convolution with bias and optional fused ReLU; kernel HWIO.
public struct ConvLayer {
  public let kernel: Parameter
  public let bias: Parameter
  public let padding: ConvPadding
  public let activation: FusedActivation

  /// A kernel [k,k,in,out] drawn by `initializer` (Glorot-uniform by default; a layer without
  /// ReLU is always Glorot) and a zero bias [out], of `dtype`, made on `backend`.
  public init(
    _ name: String, kernelSize k: Int, in cin: Int, out cout: Int, padding: ConvPadding,
    activation: FusedActivation, seed: UInt64, stream: UInt64, dtype: DType, initializer: WeightInitializer = .glorot,
    on backend: any Backend
  ) throws {
    let shape: Shape = [k, k, cin, cout]
    let init_ = initializer == .he && activation == .relu
      ? heNormal(shape: shape, fanIn: k * k * cin, seed: seed, stream: stream)
      : glorotUniform(shape: shape, fanIn: k * k * cin, fanOut: k * k * cout, seed: seed, stream: stream)
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

  /// A kernel drawn by `initializer` (Glorot-uniform by default) and a zero bias, of `dtype`, made
  /// on `backend`. He's fan-in is the taps that reach one output on average: k*k*in / 4 at stride 2.
  public init(
    _ name: String, kernelSize k: Int, in cin: Int, out cout: Int, seed: UInt64, stream: UInt64, dtype: DType,
    initializer: WeightInitializer = .glorot, on backend: any Backend
  ) throws {
    let shape: Shape = [k, k, cout, cin]
    let init_ = initializer == .he
      ? heNormal(shape: shape, fanIn: max(k * k * cin / 4, 1), seed: seed, stream: stream)
      : glorotUniform(shape: shape, fanIn: k * k * cout, fanOut: k * k * cin, seed: seed, stream: stream)
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
