import Foundation
import SegCore

// MARK: - U-Net

/// U-Net (Ronneberger et al. 2015) as NVIDIA's UNet_Medical builds it: two 3x3 convs with ReLU per
/// level, 2x2 max pooling, a bottleneck with dropout, stride-2 transposed convs with ReLU, centre-cropped
/// skip connections, and a 1x1 head. Input [N,S,S,inputChannels] -> logits [N,S',S',classes].
public final class UNet {
  public let config: UNetConfig
  /// Two convs per encoder level, top first.
  let encoder: [(ConvLayer, ConvLayer)]
  let bottleneck: (ConvLayer, ConvLayer)
  /// The transposed conv after the bottleneck, then one per decoder level below the top.
  let upconvs: [UpConvLayer]
  /// Two convs per decoder level, top first.
  let decoder: [(ConvLayer, ConvLayer)]
  let head: ConvLayer
  /// The parameters' dtype (the master weights'): the logits come back in it.
  public let dtype: DType
  /// The dtype the convolutions and the activations between them compute in: `dtype` (the
  /// default) adds no cast to the graph; f16 or bf16 (from `PrecisionPolicy.computeType`) casts the
  /// input and every kernel and bias before its conv, and the logits back to `dtype`.
  public var computeType: DType

  /// Builds the layers with kernels drawn from `seed` by `initializer` (the reference's
  /// Glorot-uniform by default) and zero biases, as `dtype` (f32; f64 for gradient checks), on `backend`.
  public init(
    config: UNetConfig, seed: UInt64 = 0, dtype: DType = .f32, initializer: WeightInitializer = .glorot, on backend: any Backend
  ) throws {
    try config.validate()
    self.config = config
    self.dtype = dtype
    computeType = dtype
    let pad: ConvPadding = config.padding == .valid ? .valid : .same
    var stream: UInt64 = 0
    func conv(_ name: String, _ k: Int, _ cin: Int, _ cout: Int, _ act: FusedActivation = .relu) throws -> ConvLayer {
      stream += 1
      return try ConvLayer(name, kernelSize: k, in: cin, out: cout, padding: k == 1 ? .valid : pad, activation: act, seed: seed, stream: stream, dtype: dtype,
                           initializer: initializer, on: backend)
    }
    let f = config.filters(level:)
    var enc: [(ConvLayer, ConvLayer)] = []
    for level in 0..<config.depth {
      let cin = level == 0 ? config.inputChannels : f(level - 1)
      enc.append((try conv("encoder\(level).conv0", 3, cin, f(level)), try conv("encoder\(level).conv1", 3, f(level), f(level))))
    }
    encoder = enc
    let d = config.depth
    bottleneck = (try conv("bottleneck.conv0", 3, f(d - 1), f(d)), try conv("bottleneck.conv1", 3, f(d), f(d)))
    var ups: [UpConvLayer] = []
    var dec: [(ConvLayer, ConvLayer)] = Array()
    // Decoder levels from the bottom up; each ends with an upconv except the top one.
    for level in stride(from: d - 1, through: 0, by: -1) {
      stream += 1
      ups.append(try UpConvLayer("upconv\(level)", kernelSize: config.upconvKernel, in: f(level + 1), out: f(level), seed: seed, stream: stream, dtype: dtype, initializer: initializer, on: backend))
      dec.append((try conv("decoder\(level).conv0", 3, 2 * f(level), f(level)), try conv("decoder\(level).conv1", 3, f(level), f(level))))
    }
    upconvs = ups
    decoder = dec.reversed()
    head = try conv("head", 1, f(0), config.classes, .none)
  }

  /// Every trainable tensor, in a fixed order.
  public var parameters: [Parameter] {
    encoder.flatMap { $0.0.parameters + $0.1.parameters }
      + bottleneck.0.parameters + bottleneck.1.parameters
      + zip(upconvs, decoder.reversed()).flatMap { $0.0.parameters + $0.1.0.parameters + $0.1.1.parameters }
      + head.parameters
  }

  /// Sets the head's bias to log(prior): before any training the softmax then predicts the class
  /// frequencies everywhere, the cross-entropy starts at their entropy, and the gradient does not
  /// first spend its steps learning the prior. `prior` has one positive frequency per class.
  public func setHeadBias(classPrior prior: [Double]) throws {
    guard prior.count == config.classes, prior.allSatisfy({ $0 > 0 && $0.isFinite }) else {
      throw SettingError(.classes, value: config.classes, "the class prior needs one positive frequency per class, got \(prior)")
    }
    let logs = prior.map { Foundation.log($0) }
    let mean = logs.reduce(0, +) / Double(logs.count)
    let values = try HostTensor(shape: [config.classes], floats: logs.map { Float($0 - mean) })
    head.bias.value = try Tensor(values.converted(to: head.bias.value.dtype), on: head.bias.value.backend)
  }

  /// Number of trainable scalars.
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.shape.count } }

  /// The step scalar the dropout seed is marked as (`markingStepScalar`): a compiled training step
  /// takes each step's seed under this name.
  public static let dropoutSeedScalar = "dropoutSeed"

  /// x [N,S,S,inputChannels] -> logits [N,S',S',classes] of `dtype`. With `dropoutSeed`, the
  /// bottleneck's dropout is applied (training); its mask derives from that seed only. Everything
  /// between the input and the logits runs in `computeType`.
  public func callAsFunction(_ x: Tensor, dropoutSeed: UInt64? = nil) throws -> Tensor {
    let t = computeType
    var skips: [Tensor] = []
    // The first conv's single input channel is cast as it is: padding channels for the GPU's
    // tensor cores is the backend's business, not the model's.
    var h = try cast(x, to: t)
    for (c0, c1) in encoder {
      h = try c1(c0(h, computeType: t), computeType: t)
      skips.append(h)
      h = try maxPool2d(h)
    }
    h = try bottleneck.1(bottleneck.0(h, computeType: t), computeType: t)
    if let seed = dropoutSeed, config.dropout > 0 {
      h = try markingStepScalar(Self.dropoutSeedScalar, .randomMaskSeed) { try dropout(h, rate: config.dropout, seed: seed) }
    }
    for (i, level) in stride(from: config.depth - 1, through: 0, by: -1).enumerated() {
      h = try upconvs[i](h, computeType: t)
      // The centre of the skip beside the upsampled path: one op where each op is a launch.
      h = try h.backend.fusesCropConcat
        ? cropConcat(h, skips[level])
        : concat([h, centerCrop(skips[level], height: h.shape[1], width: h.shape[2])], axis: -1)
      h = try decoder[level].1(decoder[level].0(h, computeType: t), computeType: t)
    }
    // Softmax, the loss and their reductions want the master type's range and precision.
    return try cast(head(h, computeType: t), to: dtype)
  }
}
