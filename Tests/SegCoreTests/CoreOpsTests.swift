import SegCore
import SegTestSupport
import Testing

// MARK: - Gradients of the core's elementwise and reduction ops

@Suite struct ElementwiseGradientTests {
  let a = randomHost(TensorType([2, 3, 4], .f64), seed: 1)
  let b = randomHost(TensorType([3, 1], .f64), seed: 2, in: 0.5..<2)

  @Test func binaryOpsWithBroadcasting() throws {
    try checkVJP("add", inputs: [a, b]) { try $0[0] + $0[1] }
    try checkVJP("sub", inputs: [a, b]) { try $0[0] - $0[1] }
    try checkVJP("mul", inputs: [a, b]) { try $0[0] * $0[1] }
    try checkVJP("div", inputs: [a, b]) { try $0[0] / $0[1] }
  }

  @Test func unaryOps() throws {
    let positive = randomHost(TensorType([5, 3], .f64), seed: 3, in: 0.5..<2)
    try checkVJP("neg", inputs: [a]) { try neg($0[0]) }
    try checkVJP("exp", inputs: [a]) { try exp($0[0]) }
    try checkVJP("log", inputs: [positive]) { try log($0[0]) }
    try checkVJP("sqrt", inputs: [positive]) { try sqrt($0[0]) }
    try checkVJP("addScalar", inputs: [a]) { try $0[0] + 3 }
    try checkVJP("mulScalar", inputs: [a]) { try $0[0] * -2.5 }
  }

  @Test func reductionsAndShapes() throws {
    try checkVJP("sum all", inputs: [a]) { try sum($0[0]) }
    try checkVJP("sum axes", inputs: [a]) { try sum($0[0], axes: [0, 2]) }
    try checkVJP("sum keepDims", inputs: [a]) { try sum($0[0], axes: [-1], keepDims: true) }
    try checkVJP("broadcastTo", inputs: [b]) { try broadcast($0[0], to: [2, 3, 4]) }
    try checkVJP("reshape", inputs: [a]) { try reshape($0[0], [4, -1]) }
  }
}

// MARK: - Values and errors

@Suite struct CoreBehaviourTests {
  @Test func broadcastingValues() throws {
    let x = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
    let y = try Tensor(shape: [2], floats: [10, 20])
    #expect(try (x + y).floats() == [11, 22, 13, 24])
    #expect(try sum(x, axes: [0]).floats() == [4, 6])
    #expect(try mean(x).floats() == [2.5])
  }

  @Test func mismatchedShapesNameTheOp() throws {
    let x = try Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6))
    let y = try Tensor(shape: [4], floats: .init(repeating: 1, count: 4))
    #expect { try x + y } throws: { error in
      "\(error)" == "add: f32[2,3], f32[4]: shapes do not broadcast"
    }
  }

  @Test func integerOperandsAreRejected() throws {
    let x = try Tensor(HostTensor(shape: [2], data: .i32([1, 2])))
    #expect { try x + x } throws: { "\($0)".contains("floating-point dtype") }
  }

  @Test func gradientOfUnusedTargetIsZero() throws {
    let x = try Tensor(shape: [2], floats: [1, 2])
    let z = try Tensor(shape: [2], floats: [3, 4])
    let g = try gradients(of: sum(x * x), wrt: [x, z])
    #expect(try g[0].floats() == [2, 4])
    #expect(try g[1].floats() == [0, 0])
  }
}
