import SegCore

// MARK: - The list of op cases

/// Every op kind at two or more shapes (odd sizes, batch > 1, broadcasting, long reductions,
/// ties), each case at every floating dtype unless it says otherwise. The one list used by the
/// backend test suites and by `unet doctor --check`.
public enum OpCases {
  /// Convolutions: f32 and the half types (no backend convolves f64 but the reference).
  static let convolutionDTypes: [DType] = [.f32, .f16, .bf16]

  public static let all: [OpCase] = convolutions + pooling + elementwise + reductions + layout + labels + optimizers
    + multiTensorOptimizers + fused

  /// Op kinds without a case (empty: every kind is checked).
  public static var missingKinds: [OpKind] {
    let covered = Set(all.map(\.kind))
    return OpKind.allCases.filter { !covered.contains($0) }
  }

  // MARK: Convolutions

  static let convolutions: [OpCase] = [
    OpCase(kind: .conv2d, label: "valid 3x3, bias, relu", inputs: [[2, 7, 6, 3], [3, 3, 3, 5], [5]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2d(x[0], x[1], bias: x[2], activation: .relu)
    },
    OpCase(kind: .conv2d, label: "same, stride 2", inputs: [[1, 9, 8, 4], [3, 3, 4, 6]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2d(x[0], x[1], strides: (2, 2), padding: .same)
    },
    OpCase(kind: .conv2d, label: "1x1 image, same", inputs: [[3, 1, 1, 5], [3, 3, 5, 2]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2d(x[0], x[1], padding: .same)
    },
    OpCase(kind: .conv2d, label: "same 3x3, 16 channels", inputs: [[2, 11, 9, 8], [3, 3, 8, 16], [16]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2d(x[0], x[1], bias: x[2], padding: .same)
    },
    OpCase(kind: .conv2dBackwardData, label: "transposed 3x3 stride 2 same", inputs: [[2, 4, 3, 6], [3, 3, 5, 6], [5]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2dTranspose(x[0], x[1], bias: x[2], activation: .relu)
    },
    OpCase(kind: .conv2dBackwardData, label: "transposed 2x2 stride 2 valid", inputs: [[1, 3, 5, 4], [2, 2, 3, 4]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2dTranspose(x[0], x[1], padding: .valid)
    },
    OpCase(kind: .conv2dBackwardData, label: "transposed 3x3 stride 2 valid, 16 channels", inputs: [[2, 5, 4, 16], [3, 3, 8, 16]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2dTranspose(x[0], x[1], padding: .valid)
    },
    OpCase(kind: .conv2dBackwardFilter, label: "explicit asymmetric padding", inputs: [[2, 6, 5, 3], [2, 5, 6, 4]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2dBackwardFilter(
        x[0], x[1], kernelSize: (3, 2), geometry: ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 0, left: 1, right: 1)))
    },
    OpCase(kind: .conv2dBackwardFilter, label: "3x3 stride 2 valid", inputs: [[2, 9, 7, 3], [2, 4, 3, 5]], dtypes: convolutionDTypes) { x, _, _ in
      try conv2dBackwardFilter(
        x[0], x[1], kernelSize: (3, 3), geometry: ConvGeometry(strides: (2, 2), padding: Padding2D(top: 0, bottom: 0, left: 0, right: 0)))
    },
  ]

  // MARK: Pooling and ReLU

  static let pooling: [OpCase] = [
    OpCase(kind: .maxPool2d, label: "2x2 stride 2, odd size", inputs: [[2, 7, 5, 3]]) { x, _, _ in try maxPool2d(x[0]) },
    OpCase(kind: .maxPool2d, label: "3x3 stride 2 overlapping, ties", inputs: [[2, 7, 9, 2]], range: -2..<2) { x, _, d in
      try maxPool2d(cast(cast(x[0], to: .i32), to: d), window: (3, 3), strides: (2, 2))
    },
    OpCase(kind: .maxPool2dBackward, label: "2x2", inputs: [[2, 6, 4, 3], [2, 3, 2, 3]], differentiable: [false, false]) { x, _, _ in
      try maxPool2dBackward(x[0], x[1])
    },
    OpCase(kind: .maxPool2dBackward, label: "2x2, 8 channels, odd size", inputs: [[1, 7, 5, 8], [1, 3, 2, 8]], differentiable: [false, false]) { x, _, _ in
      try maxPool2dBackward(x[0], x[1])
    },
    OpCase(kind: .maxPool2dBackward, label: "3x3 stride 1", inputs: [[2, 5, 6, 2], [2, 3, 4, 2]], differentiable: [false, false]) { x, _, _ in
      try maxPool2dBackward(x[0], x[1], window: (3, 3), strides: (1, 1))
    },
    OpCase(kind: .skipGradient, label: "2x2, odd crop margins, ReLU", inputs: [[2, 6, 7, 3], [2, 3, 3, 3], [2, 4, 3, 5]],
      differentiable: [false, false, false]) { x, _, _ in
      try skipGradient(x[0], x[1], x[2], pool: MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2), channels: 2, reluBackward: true)
    },
    OpCase(kind: .skipGradient, label: "2x2, 8 + 8 channels", inputs: [[1, 8, 6, 8], [1, 4, 3, 8], [1, 4, 4, 16]],
      differentiable: [false, false, false]) { x, _, _ in
      try skipGradient(x[0], x[1], x[2], pool: MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2), channels: 8, reluBackward: false)
    },
    OpCase(kind: .skipGradient, label: "2x2 stride 3, gaps between windows, ReLU", inputs: [[1, 7, 8, 4], [1, 2, 3, 4], [1, 5, 6, 8]],
      differentiable: [false, false, false]) { x, _, _ in
      try skipGradient(x[0], x[1], x[2], pool: MaxPool2D(windowH: 2, windowW: 2, strideH: 3, strideW: 3), channels: 4, reluBackward: true)
    },
    OpCase(kind: .skipGradient, label: "3x3 stride 2 overlapping, ReLU", inputs: [[1, 7, 7, 2], [1, 3, 3, 2], [1, 5, 4, 4]],
      differentiable: [false, false, false]) { x, _, _ in
      try skipGradient(x[0], x[1], x[2], pool: MaxPool2D(windowH: 3, windowW: 3, strideH: 2, strideW: 2), channels: 2, reluBackward: true)
    },
    OpCase(kind: .relu, label: "", inputs: [[2, 3, 5, 7]]) { x, _, _ in try relu(x[0]) },
    OpCase(kind: .relu, label: "odd length", inputs: [[3, 17]]) { x, _, _ in try relu(x[0]) },
    OpCase(kind: .reluBackward, label: "", inputs: [[2, 3, 4], [2, 3, 4]], differentiable: [true, false]) { x, _, _ in
      try reluBackward(x[0], x[1])
    },
    OpCase(kind: .reluBackward, label: "odd length", inputs: [[5, 7, 3], [5, 7, 3]], differentiable: [true, false]) { x, _, _ in
      try reluBackward(x[0], x[1])
    },
  ]

  // MARK: Elementwise

  static let elementwise: [OpCase] = [
    OpCase(kind: .add, label: "bias broadcast", inputs: [[2, 3, 4, 5], [5]]) { x, _, _ in try x[0] + x[1] },
    OpCase(kind: .add, label: "both broadcast", inputs: [[3, 1, 4], [5, 1]]) { x, _, _ in try x[0] + x[1] },
    OpCase(kind: .sub, label: "middle broadcast", inputs: [[2, 3, 4], [3, 1]]) { x, _, _ in try x[0] - x[1] },
    OpCase(kind: .sub, label: "same shape", inputs: [[4, 9], [4, 9]]) { x, _, _ in try x[0] - x[1] },
    OpCase(kind: .mul, label: "same shape", inputs: [[13, 5, 3], [13, 5, 3]]) { x, _, _ in try x[0] * x[1] },
    OpCase(kind: .mul, label: "broadcast", inputs: [[2, 5, 3], [5, 1]]) { x, _, _ in try x[0] * x[1] },
    OpCase(kind: .div, label: "scalar divisor", inputs: [[7, 3], []], range: 0.5..<2) { x, _, _ in try x[0] / x[1] },
    OpCase(kind: .div, label: "same shape", inputs: [[6, 5], [6, 5]], range: 0.5..<2) { x, _, _ in try x[0] / x[1] },
    OpCase(kind: .neg, label: "", inputs: [[7]]) { x, _, _ in try neg(x[0]) },
    OpCase(kind: .neg, label: "rank 3", inputs: [[2, 3, 5]]) { x, _, _ in try neg(x[0]) },
    OpCase(kind: .exp, label: "", inputs: [[3, 5]]) { x, _, _ in try exp(x[0]) },
    OpCase(kind: .exp, label: "wide range", inputs: [[2, 9, 4]], range: -6..<6) { x, _, _ in try exp(x[0]) },
    OpCase(kind: .log, label: "", inputs: [[3, 5]], range: 0.1..<3) { x, _, _ in try log(x[0]) },
    OpCase(kind: .log, label: "rank 2", inputs: [[4, 11]], range: 0.01..<50) { x, _, _ in try log(x[0]) },
    OpCase(kind: .sqrt, label: "", inputs: [[3, 5]], range: 0.1..<3) { x, _, _ in try sqrt(x[0]) },
    OpCase(kind: .sqrt, label: "rank 3", inputs: [[2, 7, 3]], range: 0.01..<50) { x, _, _ in try sqrt(x[0]) },
    OpCase(kind: .addScalar, label: "", inputs: [[4, 3]]) { x, _, _ in try x[0] + 0.25 },
    OpCase(kind: .addScalar, label: "negative", inputs: [[2, 5, 3]]) { x, _, _ in try x[0] + -1.5 },
    OpCase(kind: .mulScalar, label: "", inputs: [[4, 3]]) { x, _, _ in try x[0] * -3 },
    OpCase(kind: .mulScalar, label: "small", inputs: [[2, 5, 3]]) { x, _, _ in try x[0] * 0.125 },
  ]

  // MARK: Reductions and softmax

  static let reductions: [OpCase] = [
    OpCase(kind: .sum, label: "all", inputs: [[2, 5, 3, 4]]) { x, _, _ in try sum(x[0]) },
    OpCase(kind: .sum, label: "N,H,W", inputs: [[2, 5, 3, 4]]) { x, _, _ in try sum(x[0], axes: [0, 1, 2]) },
    OpCase(kind: .sum, label: "N,H,W (bias gradient), long", inputs: [[3, 20, 17, 4]]) { x, _, _ in try sum(x[0], axes: [0, 1, 2]) },
    OpCase(kind: .sum, label: "H,W keepDims", inputs: [[2, 5, 3, 4]]) { x, _, _ in try sum(x[0], axes: [1, 2], keepDims: true) },
    OpCase(kind: .sum, label: "axes 0 and 2", inputs: [[3, 4, 5, 2]]) { x, _, _ in try sum(x[0], axes: [0, 2]) },
    OpCase(kind: .sum, label: "last axis", inputs: [[6, 70]]) { x, _, _ in try sum(x[0], axes: [-1]) },
    OpCase(kind: .broadcastTo, label: "", inputs: [[3, 1]]) { x, _, _ in try broadcast(x[0], to: [2, 3, 4]) },
    OpCase(kind: .broadcastTo, label: "leading axes", inputs: [[5]]) { x, _, _ in try broadcast(x[0], to: [2, 3, 5]) },
    OpCase(kind: .softmax, label: "", inputs: [[2, 3, 2, 5]], range: -4..<4) { x, _, _ in try softmax(x[0]) },
    OpCase(kind: .softmax, label: "2 classes", inputs: [[2, 9, 2]], range: -4..<4) { x, _, _ in try softmax(x[0]) },
    OpCase(kind: .logSoftmax, label: "", inputs: [[2, 3, 2, 5]], range: -4..<4) { x, _, _ in try logSoftmax(x[0]) },
    OpCase(kind: .logSoftmax, label: "7 classes", inputs: [[3, 4, 7]], range: -4..<4) { x, _, _ in try logSoftmax(x[0]) },
    OpCase(kind: .logSoftmax, label: "large logits", inputs: [[5, 3]], range: 500..<900, dtypes: [.f32, .f64]) { x, _, _ in
      try logSoftmax(x[0])
    },
  ]

  // MARK: Layout

  static let layout: [OpCase] = [
    OpCase(kind: .reshape, label: "", inputs: [[2, 3, 4]]) { x, _, _ in try reshape(x[0], [4, 6]) },
    OpCase(kind: .reshape, label: "flatten", inputs: [[3, 5, 2]]) { x, _, _ in try reshape(x[0], [30]) },
    OpCase(kind: .concat, label: "channels", inputs: [[2, 3, 3, 2], [2, 3, 3, 5]]) { x, _, _ in try concat([x[0], x[1]]) },
    OpCase(kind: .concat, label: "axis 1, three inputs", inputs: [[2, 1, 3], [2, 4, 3], [2, 2, 3]]) { x, _, _ in
      try concat([x[0], x[1], x[2]], axis: 1)
    },
    OpCase(kind: .slice, label: "centre crop", inputs: [[2, 9, 8, 3]]) { x, _, _ in try centerCrop(x[0], height: 5, width: 4) },
    OpCase(kind: .slice, label: "centre crop, odd margins", inputs: [[3, 7, 6, 2]]) { x, _, _ in try centerCrop(x[0], height: 4, width: 3) },
    OpCase(kind: .pad, label: "zero", inputs: [[2, 3, 4, 2]]) { x, _, _ in try pad(x[0], before: [0, 1, 2, 0], after: [0, 2, 0, 0]) },
    OpCase(kind: .pad, label: "reflect", inputs: [[1, 4, 5, 2]]) { x, _, _ in
      try pad(x[0], before: [0, 2, 3, 0], after: [0, 3, 1, 0], mode: .reflect)
    },
    OpCase(kind: .padBackward, label: "reflect adjoint", inputs: [[1, 9, 9, 2]]) { x, _, _ in
      try padBackward(x[0], before: [0, 2, 3, 0], after: [0, 3, 1, 0])
    },
    OpCase(kind: .padBackward, label: "every axis", inputs: [[7, 6, 7]]) { x, _, _ in
      try padBackward(x[0], before: [1, 2, 0], after: [2, 1, 3])
    },
    OpCase(kind: .cropConcat, label: "odd margins", inputs: [[2, 3, 4, 3], [2, 6, 7, 5]]) { x, _, _ in try cropConcat(x[0], x[1]) },
    OpCase(kind: .cropConcat, label: "16 + 8 channels", inputs: [[1, 4, 3, 16], [1, 8, 7, 8]]) { x, _, _ in try cropConcat(x[0], x[1]) },
    OpCase(kind: .cropConcatBackward, label: "odd margins", inputs: [[2, 3, 4, 8]], differentiable: [false]) { x, _, _ in
      try cropConcatGradients(x[0], channels: 3, skipHeight: 6, skipWidth: 7)
    },
    OpCase(kind: .cropConcatBackward, label: "16 + 8 channels", inputs: [[1, 4, 3, 24]], differentiable: [false]) { x, _, _ in
      try cropConcatGradients(x[0], channels: 16, skipHeight: 8, skipWidth: 7)
    },
  ]

  /// Both outputs of `cropConcatBackward`, flattened and concatenated into one.
  private static func cropConcatGradients(_ g: Tensor, channels: Int, skipHeight: Int, skipWidth: Int) throws -> Tensor {
    let r = try cropConcatBackward(g, channels: channels, skipHeight: skipHeight, skipWidth: skipWidth)
    return try concat([reshape(r.a, [r.a.shape.count]), reshape(r.skip, [r.skip.shape.count])], axis: 0)
  }

  // MARK: Random, type and label ops

  static let labels: [OpCase] = [
    OpCase(kind: .randomMask, label: "keep 0.7", inputs: []) { _, backend, d in
      try randomMask(shape: [2, 5, 7, 3], keepProbability: 0.7, seed: 42, offset: 9, dtype: d, on: backend)
    },
    OpCase(kind: .randomMask, label: "keep 0.3, large offset", inputs: []) { _, backend, d in
      try randomMask(shape: [300], keepProbability: 0.3, seed: 1, offset: 1 << 40, dtype: d, on: backend)
    },
    OpCase(kind: .cast, label: "to bf16 and back", inputs: [[3, 7]]) { x, _, d in try cast(cast(x[0], to: .bf16), to: d) },
    OpCase(kind: .cast, label: "to i32", inputs: [[3, 7]], range: -50..<50) { x, _, _ in try cast(x[0], to: .i32) },
    OpCase(kind: .cast, label: "to u8, wrapping", inputs: [[40]], range: -600..<600) { x, _, _ in try cast(x[0], to: .u8) },
    OpCase(kind: .cast, label: "to f64", inputs: [[9]], range: -60_000..<60_000) { x, _, _ in try cast(x[0], to: .f64) },
    OpCase(kind: .argmax, label: "channels", inputs: [[2, 3, 4, 5]]) { x, _, _ in try argmax(x[0]) },
    OpCase(kind: .argmax, label: "middle axis, ties", inputs: [[3, 6, 4]], range: -2..<2) { x, _, d in
      try argmax(cast(cast(x[0], to: .i32), to: d), axis: 1)
    },
    OpCase(kind: .oneHot, label: "from argmax", inputs: [[2, 3, 3, 4]]) { x, _, d in try oneHot(argmax(x[0]), classes: 4, dtype: d) },
    OpCase(kind: .oneHot, label: "u8 labels", inputs: [[10]], range: 0..<3) { x, _, d in
      try oneHot(cast(x[0], to: .u8), classes: 3, dtype: d)
    },
  ]

  // MARK: Fused optimizer updates

  /// p', m' and v' of one Adam step, concatenated into one output; p, m and v are f32 (v made
  /// non-negative), the gradient is at the case's dtype where the op takes it.
  static let optimizers: [OpCase] = [
    OpCase(kind: .adamUpdate, label: "f32 gradient", inputs: [[5, 7], [5, 7], [5, 7], [5, 7]], differentiable: [false, false, false, false]) { x, _, _ in
      try adamStep(x, gradientType: .f32, stepSize: 1e-3)
    },
    OpCase(kind: .adamUpdate, label: "gradient at the dtype, large step", inputs: [[301], [301], [301], [301]], differentiable: [false, false, false, false]) { x, _, d in
      try adamStep(x, gradientType: d == .f64 ? .f32 : d, stepSize: 0.5)
    },
  ]

  /// Every output of one multi-tensor step over two parameters ([5,7] and [301]), flattened and
  /// concatenated with the new state; with `poisoned`, the first gradient is -inf everywhere and
  /// the step is skipped (the scale halved), else the scale doubles (its growth interval reached).
  /// The op computes in f32 whatever the case's dtype (gradients at f16 and bf16), so no f64 run.
  static let multiTensorOptimizers: [OpCase] = [false, true].map { poisoned in
    OpCase(
      kind: .multiTensorAdam, label: poisoned ? "inf gradient, skipped" : "scaled, weight decay, scale grows",
      inputs: [[1], [1], [5, 7], [301], [5, 7], [301], [5, 7], [301], [5, 7], [301]],
      differentiable: Array(repeating: false, count: 10), dtypes: [.f32, .f16, .bf16]
    ) { x, _, d in
      let f32 = try x.map { try cast($0, to: .f32) }
      let gradientType = d == .f64 ? DType.f32 : d
      var g = try [x[8], x[9]].map { try cast($0, to: gradientType) }
      if poisoned { g[0] = try g[0] + log(g[0] * 0) }
      let state = try Tensor(
        shape: [StepState.count], floats: StepState.initial(scale: 4, goodSteps: 1, skippedSteps: 2, appliedSteps: 9), on: x[0].backend)
      let r = try multiTensorAdam(
        crossEntropy: f32[0], dice: f32[1], state: state, parameters: [f32[2], f32[3]], m: [f32[4], f32[5]],
        v: [f32[6] * f32[6], f32[7] * f32[7]], gradients: g,
        AdamHyperparameters(learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7), weightDecay: 0.05,
        growthInterval: 2, halfCopy: poisoned ? .bf16 : .f16)
      let halves = try r.halves.map { try cast($0, to: .f32) }
      return try concat((r.parameters + r.m + r.v + [r.state] + halves).map { try reshape($0, [$0.shape.count]) }, axis: 0)
    }
  }

  private static func adamStep(_ x: [Tensor], gradientType: DType, stepSize: Double) throws -> Tensor {
    let (p, m, v) = (try cast(x[0], to: .f32), try cast(x[1], to: .f32), try cast(x[2] * x[2], to: .f32))
    let c = AdamConstants(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, stepSize: stepSize)
    let r = try adamUpdate(parameter: p, m: m, v: v, gradient: cast(x[3], to: gradientType), c)
    return try concat([r.parameter, r.m, r.v], axis: 0)
  }

  // MARK: Fused elementwise

  /// A transposed conv's bias + ReLU with a skip scaled in, and a chain over a scalar and a
  /// broadcast row: what the compiler's fusion makes.
  static let fused: [OpCase] = [
    OpCase(kind: .fusedElementwise, label: "bias, relu, scaled residual", inputs: [[2, 5, 4, 8], [8], [2, 5, 4, 8]]) { x, _, _ in
      try fusedElementwise(x, [
        (.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)]),
        (.unary(Unary(.mulScalar(0.5))), [.input(2)]), (.binary(Binary(.add)), [.step(1), .step(2)]),
      ])
    },
    OpCase(kind: .fusedElementwise, label: "exp, div by a broadcast row, relu backward", inputs: [[3, 7, 5], [1, 5], [1]]) { x, _, _ in
      try fusedElementwise(x, [
        (.unary(Unary(.exp)), [.input(0)]), (.binary(Binary(.div)), [.step(0), .input(1)]),
        (.binary(Binary(.sub)), [.step(1), .input(2)]), (.reluBackward(ReLUBackward()), [.step(2), .input(0)]),
      ])
    },
  ]
}
