import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Every op on the CPU backend against the reference

private func f32(_ dims: Shape) -> TensorType { TensorType(dims, .f32) }

/// At least one case per op kind, exercising odd sizes, batch > 1 and broadcasting.
let conformanceCases: [OpCase] = [
  OpCase(kind: .conv2d, label: "valid 3x3, bias, relu", inputs: [f32([2, 7, 6, 3]), f32([3, 3, 3, 5]), f32([5])]) { x, _ in
    try conv2d(x[0], x[1], bias: x[2], activation: .relu)
  },
  OpCase(kind: .conv2d, label: "same, stride 2", inputs: [f32([1, 9, 8, 4]), f32([3, 3, 4, 6])]) { x, _ in
    try conv2d(x[0], x[1], strides: (2, 2), padding: .same)
  },
  OpCase(kind: .conv2d, label: "1x1 image, same", inputs: [f32([3, 1, 1, 5]), f32([3, 3, 5, 2])]) { x, _ in
    try conv2d(x[0], x[1], padding: .same)
  },
  OpCase(kind: .conv2dBackwardData, label: "transposed 3x3 stride 2 same", inputs: [f32([2, 4, 3, 6]), f32([3, 3, 5, 6]), f32([5])]) { x, _ in
    try conv2dTranspose(x[0], x[1], bias: x[2], activation: .relu)
  },
  OpCase(kind: .conv2dBackwardData, label: "transposed 2x2 stride 2 valid", inputs: [f32([1, 3, 5, 4]), f32([2, 2, 3, 4])]) { x, _ in
    try conv2dTranspose(x[0], x[1], padding: .valid)
  },
  OpCase(kind: .conv2dBackwardFilter, label: "explicit asymmetric padding", inputs: [f32([2, 6, 5, 3]), f32([2, 5, 6, 4])]) { x, _ in
    try conv2dBackwardFilter(x[0], x[1], kernelSize: (3, 2), geometry: ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 0, left: 1, right: 1)))
  },
  OpCase(kind: .maxPool2d, label: "2x2 stride 2, odd size", inputs: [f32([2, 7, 5, 3])]) { x, _ in try maxPool2d(x[0]) },
  OpCase(kind: .maxPool2dBackward, label: "2x2", inputs: [f32([2, 6, 4, 3]), f32([2, 3, 2, 3])], differentiable: [false, false]) { x, _ in
    try maxPool2dBackward(x[0], x[1])
  },
  OpCase(kind: .relu, label: "", inputs: [f32([2, 3, 5, 7])]) { x, _ in try relu(x[0]) },
  OpCase(kind: .reluBackward, label: "", inputs: [f32([2, 3, 4]), f32([2, 3, 4])], differentiable: [true, false]) { x, _ in
    try reluBackward(x[0], x[1])
  },
  OpCase(kind: .add, label: "bias broadcast", inputs: [f32([2, 3, 4, 5]), f32([5])]) { x, _ in try x[0] + x[1] },
  OpCase(kind: .sub, label: "middle broadcast", inputs: [f32([2, 3, 4]), f32([3, 1])]) { x, _ in try x[0] - x[1] },
  OpCase(kind: .mul, label: "same shape", inputs: [f32([13, 5, 3]), f32([13, 5, 3])]) { x, _ in try x[0] * x[1] },
  OpCase(kind: .div, label: "scalar divisor", inputs: [f32([7, 3]), f32([])], range: 0.5..<2) { x, _ in try x[0] / x[1] },
  OpCase(kind: .neg, label: "", inputs: [f32([7])]) { x, _ in try neg(x[0]) },
  OpCase(kind: .exp, label: "", inputs: [f32([3, 5])]) { x, _ in try exp(x[0]) },
  OpCase(kind: .log, label: "", inputs: [f32([3, 5])], range: 0.1..<3) { x, _ in try log(x[0]) },
  OpCase(kind: .sqrt, label: "", inputs: [f32([3, 5])], range: 0.1..<3) { x, _ in try sqrt(x[0]) },
  OpCase(kind: .addScalar, label: "", inputs: [f32([4, 3])]) { x, _ in try x[0] + 0.25 },
  OpCase(kind: .mulScalar, label: "", inputs: [f32([4, 3])]) { x, _ in try x[0] * -3 },
  OpCase(kind: .sum, label: "all", inputs: [f32([2, 5, 3, 4])]) { x, _ in try sum(x[0]) },
  OpCase(kind: .sum, label: "N,H,W", inputs: [f32([2, 5, 3, 4])]) { x, _ in try sum(x[0], axes: [0, 1, 2]) },
  OpCase(kind: .sum, label: "H,W keepDims", inputs: [f32([2, 5, 3, 4])]) { x, _ in try sum(x[0], axes: [1, 2], keepDims: true) },
  OpCase(kind: .broadcastTo, label: "", inputs: [f32([3, 1])]) { x, _ in try broadcast(x[0], to: [2, 3, 4]) },
  OpCase(kind: .softmax, label: "", inputs: [f32([2, 3, 2, 5])], range: -4..<4) { x, _ in try softmax(x[0]) },
  OpCase(kind: .logSoftmax, label: "", inputs: [f32([2, 3, 2, 5])], range: -4..<4) { x, _ in try logSoftmax(x[0]) },
  OpCase(kind: .reshape, label: "", inputs: [f32([2, 3, 4])]) { x, _ in try reshape(x[0], [4, 6]) },
  OpCase(kind: .concat, label: "channels", inputs: [f32([2, 3, 3, 2]), f32([2, 3, 3, 5])]) { x, _ in try concat([x[0], x[1]]) },
  OpCase(kind: .concat, label: "axis 1", inputs: [f32([2, 1, 3]), f32([2, 4, 3])]) { x, _ in try concat([x[0], x[1]], axis: 1) },
  OpCase(kind: .slice, label: "centre crop", inputs: [f32([2, 9, 8, 3])]) { x, _ in try centerCrop(x[0], height: 5, width: 4) },
  OpCase(kind: .pad, label: "zero", inputs: [f32([2, 3, 4, 2])]) { x, _ in try pad(x[0], before: [0, 1, 2, 0], after: [0, 2, 0, 0]) },
  OpCase(kind: .pad, label: "reflect", inputs: [f32([1, 4, 5, 2])]) { x, _ in try pad(x[0], before: [0, 2, 3, 0], after: [0, 3, 1, 0], mode: .reflect) },
  OpCase(kind: .padBackward, label: "reflect adjoint", inputs: [f32([1, 9, 9, 2])]) { x, _ in try padBackward(x[0], before: [0, 2, 3, 0], after: [0, 3, 1, 0]) },
  OpCase(kind: .randomMask, label: "keep 0.7", inputs: []) { _, backend in
    try randomMask(shape: [2, 5, 7, 3], keepProbability: 0.7, seed: 42, offset: 9, on: backend)
  },
  OpCase(kind: .cast, label: "f32 to bf16 and back", inputs: [f32([3, 7])]) { x, _ in try cast(cast(x[0], to: .bf16), to: .f32) },
  OpCase(kind: .cast, label: "f32 to i32", inputs: [f32([3, 7])], range: -50..<50) { x, _ in try cast(x[0], to: .i32) },
  OpCase(kind: .argmax, label: "channels", inputs: [f32([2, 3, 4, 5])]) { x, _ in try argmax(x[0]) },
  OpCase(kind: .oneHot, label: "from argmax", inputs: [f32([2, 3, 3, 4])]) { x, _ in try oneHot(argmax(x[0]), classes: 4) },
]

@Suite struct BackendConformanceTests {
  @Test func everyOpKindHasACase() {
    let covered = Set(conformanceCases.map(\.kind))
    let missing = OpKind.allCases.filter { !covered.contains($0) }
    #expect(missing.isEmpty, "op kinds without a conformance case: \(missing)")
  }

  @Test(arguments: conformanceCases.indices)
  func cpuMatchesReference(_ index: Int) throws {
    try conformanceCases[index].expectMatchesReference(on: CPUBackend.shared, index: index)
  }
}
