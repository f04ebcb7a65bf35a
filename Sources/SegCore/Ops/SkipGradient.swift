// MARK: - Public function

/// The gradient reaching a U-Net encoder's output `x` [N,H,W,C] through both of its readers, in
/// one op: max pooling's backward (`dy` [N,OH,OW,C], the pooled output's gradient) plus the skip
/// connection's share of `cropConcat`'s gradient `g` [N,h,w,channels+C] (its channels from
/// `channels` on, zero-padded about the centre back to H x W); with `reluBackward`, then ReLU's
/// backward against `x` (the ReLU's output, which the pool read). Made by the compiler's
/// `FuseSkipGradient` pass from the separate ops; not differentiable.
public func skipGradient(
  _ x: Tensor, _ dy: Tensor, _ g: Tensor, pool: MaxPool2D, channels: Int, reluBackward: Bool
) throws -> Tensor {
  try Tensor.apply(SkipGradient(pool: pool, channels: channels, reluBackward: reluBackward), [x, dy, g])
}

// MARK: - SkipGradient

/// `maxPool2dBackward(x, dy) + cropConcatBackward(g).skip`, then `reluBackward(_, x)` when asked:
/// the same values as those ops one after another (each rounded to the dtype as they would be),
/// read and written in one pass. Inputs x [N,H,W,C], dy [N,OH,OW,C], g [N,h,w,channels+C].
public struct SkipGradient: Primitive {
  /// The pooling whose gradient `dy` is.
  public let pool: MaxPool2D
  /// Where the skip's channels start in `g` (the upsampled path's channel count).
  public let channels: Int
  /// Whether ReLU's backward against `x` follows the sum.
  public let reluBackward: Bool
  public static let kinds: [OpKind] = [.skipGradient]
  public var description: String {
    "skipGradient(\(pool), channels from \(channels)\(reluBackward ? ", then reluBackward" : ""))"
  }

  /// The op of `pool`'s backward plus the skip's share of a cropConcat gradient split at `channels`.
  public init(pool: MaxPool2D, channels: Int, reluBackward: Bool) {
    (self.pool, self.channels, self.reluBackward) = (pool, channels, reluBackward)
  }

  // MARK: The ops it stands for

  /// Its three parts, each checked by its own shape rule.
  private func parts(_ inputs: [TensorType]) throws -> (pooled: TensorType, crop: CropConcatBackward) {
    try expectOperands(inputs, 3)
    let (x, g) = (inputs[0], inputs[2])
    let pooled = try MaxPool2DBackward(pool: pool).outputType([x, inputs[1]])
    guard g.dtype == x.dtype, g.shape.rank == 4, g.shape[3] - channels == x.shape[3] else {
      throw TensorError(
        op: kind.rawValue, operands: inputs,
        "the concat's gradient must share x's dtype and hold x's \(x.shape[3]) channels after the first \(channels)")
    }
    let crop = CropConcatBackward(channels: channels, skipHeight: x.shape[1], skipWidth: x.shape[2])
    guard try crop.outputTypes([g])[1] == pooled else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the concat's gradient does not crop from x's shape")
    }
    return (pooled, crop)
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType { try parts(inputs).pooled }

  /// A gradient's gradient is never asked for: this op runs inside the backward pass.
  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard !needed.contains(true) else {
      throw TensorError(op: kind.rawValue, operands: inputs.map(\.type), "has no gradient (it runs inside the backward pass)")
    }
    return inputs.map { _ in nil }
  }

  // MARK: Reference

  /// The parts' own reference kernels in turn, each result rounded to the dtype.
  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let (pooled, crop) = try parts(inputs.map(\.type))
    let poolGradient = try MaxPool2DBackward(pool: pool).reference([inputs[0], inputs[1]], output: pooled)
    let cropTypes = try crop.outputTypes([inputs[2].type])
    let skip = try crop.referenceOutputs([inputs[2]], outputs: cropTypes)[1]
    let sum = try Binary(.add).reference([poolGradient, skip], output: pooled)
    return reluBackward ? try ReLUBackward().reference([sum, inputs[0]], output: pooled) : sum
  }
}

// MARK: - Running as the separate ops with a backend's own kernels

extension SkipGradient {
  /// The output computed as the ops it stands for, with `kernels` (a backend's own table), as the
  /// compiled step ran them before they were joined: the pool's backward, the skip's channel slice
  /// and its zero pad about the centre, then the sum (and ReLU's backward) as one fused elementwise
  /// op placed where the caller asked (`OutputPlacement.current`). For a backend or operands without
  /// a kernel of their own.
  public func runSeparately(_ inputs: [Operand], output: TensorType, with kernels: KernelTable) throws -> any DeviceStorage {
    let placement = OutputPlacement.current
    let types = inputs.map(\.type)
    let pooled = try parts(types).pooled
    let (x, g) = (types[0].shape, types[2].shape)
    let shareType = TensorType([g[0], g[1], g[2], g[3] - channels], pooled.dtype)
    func run(_ op: any Primitive, _ operands: [Operand], _ type: TensorType, placed: Bool = false) throws -> Operand {
      let storage = try OutputPlacement.$current.withValue(placed ? placement : nil) { try kernels.run(op, operands, outputs: [type])[0] }
      return Operand(storage: storage, type: type)
    }
    let poolGradient = try run(MaxPool2DBackward(pool: pool), [inputs[0], inputs[1]], pooled)
    let share = try run(Slice(starts: [0, 0, 0, channels], sizes: shareType.shape.dims), [inputs[2]], shareType)
    let skip = try run(CropWindow.padding(crop: shareType.shape, whole: x), [share], pooled)
    guard reluBackward else { return try run(Binary(.add), [poolGradient, skip], pooled, placed: true).storage }
    let sum = try FusedElementwise(
      inputs: [pooled, pooled, types[0]], [(.binary(Binary(.add)), [.input(0), .input(1)]), (.reluBackward(ReLUBackward()), [.step(0), .input(2)])])
    return try run(sum, [poolGradient, skip, inputs[0]], pooled, placed: true).storage
  }
}
