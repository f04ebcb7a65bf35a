import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Max pooling and ReLU on the CPU against the reference

@Suite struct PoolingReLUCPUTests {
  @Test(arguments: [
    (Shape([2, 6, 7, 5]), (2, 2), (2, 2)),
    (Shape([1, 7, 7, 3]), (3, 3), (2, 2)),
    (Shape([2, 4, 6, 9]), (2, 3), (1, 2)),
    (Shape([1, 2, 2, 1]), (2, 2), (2, 2)),
  ])
  func maxPoolAndItsGradient(x: Shape, window: (Int, Int), strides: (Int, Int)) throws {
    try expectCPUMatchesReference("maxPool2d \(x) window \(window) strides \(strides)", inputs: [random(x, seed: 21)]) {
      try maxPool2d($0[0], window: window, strides: strides)
    }
  }

  /// Inputs drawn from {0, 1, 2} tie in most windows: the gradient must go to the first maximum in
  /// row-major window order, as the reference does, also where windows overlap.
  @Test(arguments: [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 2), (1, 1))])
  func ties(window: (Int, Int), strides: (Int, Int)) throws {
    var rng = SeededRandom(seed: 5)
    let values = (0..<(2 * 7 * 8 * 11)).map { _ in Double(Int.random(in: 0...2, using: &rng)) }
    let x = HostTensor(type: TensorType([2, 7, 8, 11], .f32), doubles: values)
    try expectCPUMatchesReference("maxPool2d ties window \(window) strides \(strides)", inputs: [x]) {
      try maxPool2d($0[0], window: window, strides: strides)
    }
  }

  @Test func maxPoolBackwardOp() throws {
    try expectCPUMatchesReference(
      "maxPool2dBackward", inputs: [random([2, 5, 6, 3], seed: 22), random([2, 2, 3, 3], seed: 23)], withGradients: false
    ) { try maxPool2dBackward($0[0], $0[1]) }
  }

  @Test(arguments: [Shape([3, 5]), Shape([2, 3, 4, 5]), Shape([7]), Shape([])])
  func reluAndItsGradient(shape: Shape) throws {
    // Values on a grid of quarters, so exact zeros (whose gradient is 0) occur.
    var rng = SeededRandom(seed: 31)
    let values = (0..<shape.count).map { _ in Double(Int.random(in: -4...4, using: &rng)) / 4 }
    try expectCPUMatchesReference("relu \(shape)", inputs: [HostTensor(type: TensorType(shape, .f32), doubles: values)]) {
      try relu($0[0])
    }
  }

  @Test func reluBackwardOp() throws {
    try expectCPUMatchesReference(
      "reluBackward", inputs: [random([2, 3, 3, 4], seed: 32), random([2, 3, 3, 4], seed: 33)], withGradients: false
    ) { try reluBackward($0[0], $0[1]) }
  }

  /// oneDNN declines f64, and the Swift kernels compute ReLU and its gradient instead.
  @Test func reluInF64FallsBackToSwift() throws {
    let x = randomHost(TensorType([2, 3, 4, 5], .f64), seed: 34)
    try expectMatchesReference(on: CPUBackend.shared, "relu f64", inputs: [x], atol: 1e-14, rtol: 1e-14) { t, _ in
      try relu(t[0])
    }
  }

  @Test func emptyTensors() throws {
    let x = try Tensor(shape: [0, 3], floats: [], on: CPUBackend.shared)
    #expect(try relu(x).shape == [0, 3])
    let img = try Tensor(shape: [0, 4, 4, 2], floats: [], on: CPUBackend.shared)
    #expect(try maxPool2d(img).shape == [0, 2, 2, 2])
  }
}
