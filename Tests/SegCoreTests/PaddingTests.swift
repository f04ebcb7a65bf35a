import SegCore
import SegTestSupport
import Testing

// MARK: - Zero and reflect padding, and the adjoint of reflect padding

@Suite struct PaddingTests {
  @Test func zeroPadValues() throws {
    let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
    let y = try pad(x, before: [1, 0], after: [0, 2])
    #expect(y.shape == [3, 5])
    #expect(try y.floats() == [0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0])
    #expect(try pad(x, before: [0, 0], after: [0, 0]).node === x.node)
    let labels = try Tensor(HostTensor(shape: [2], data: .u8([7, 9])))
    let padded = try pad(labels, before: [1], after: [1])
    #expect(padded.dtype == .u8)
    #expect(try padded.host().doubles == [0, 7, 9, 0])
  }

  @Test func reflectPadMatchesNumPy() throws {
    let v = try Tensor(shape: [3], floats: [1, 2, 3])
    #expect(try pad(v, before: [2], after: [2], mode: .reflect).floats() == [3, 2, 1, 2, 3, 2, 1])
    // np.pad([[1,2,3],[4,5,6]], ((1,1),(2,1)), mode='reflect')
    let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
    let y = try pad(x, before: [1, 2], after: [1, 1], mode: .reflect)
    #expect(y.shape == [4, 6])
    #expect(try y.floats() == [6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2])
    // A size-1 axis can be reflect-padded by nothing.
    let one = try Tensor(shape: [1, 2], floats: [1, 2])
    #expect(try pad(one, before: [0, 1], after: [0, 0], mode: .reflect).floats() == [2, 1, 2])
  }

  @Test func padBackwardFoldsTheBorder() throws {
    // pad([a,b,c], 2, 2) = [c,b,a,b,c,b,a]: a appears twice, b three times, c twice.
    let g = try Tensor(repeating: 1, shape: [7])
    #expect(try padBackward(g, before: [2], after: [2]).floats() == [2, 3, 2])
    let g2 = try Tensor(shape: [5], floats: [10, 20, 30, 40, 50])
    // pad([a,b,c], 1, 1) = [b,a,b,c,b]
    #expect(try padBackward(g2, before: [1], after: [1]).floats() == [20, 10 + 30 + 50, 40])
  }

  @Test func padBackwardIsTheAdjointOfReflectPad() throws {
    // <pad(x), g> = <x, padBackward(g)> for any x and g.
    let before = [1, 2, 0, 1], after = [0, 1, 2, 1]
    let xh = randomHost(TensorType([2, 3, 3, 2], .f64), seed: 21)
    let x = try Tensor(xh)
    let p = try pad(x, before: before, after: after, mode: .reflect)
    let g = try Tensor(randomHost(p.type, seed: 22))
    let lhs = try sum(p * g).item()
    let rhs = try sum(x * padBackward(g, before: before, after: after)).item()
    #expect(abs(lhs - rhs) <= 1e-12 * max(1, abs(lhs)), "<pad x, g> = \(lhs), <x, padBackward g> = \(rhs)")
  }

  @Test func gradientsInF64() throws {
    let x = randomHost(TensorType([2, 3, 4, 2], .f64), seed: 23)
    try checkVJP("zero pad", inputs: [x]) { try pad($0[0], before: [0, 1, 2, 0], after: [1, 2, 0, 1]) }
    try checkVJP("reflect pad", inputs: [x]) {
      try pad($0[0], before: [0, 2, 3, 1], after: [0, 1, 1, 0], mode: .reflect)
    }
    let g = randomHost(TensorType([2, 5, 7, 3], .f64), seed: 24)
    try checkVJP("padBackward", inputs: [g]) { try padBackward($0[0], before: [0, 1, 2, 1], after: [0, 1, 2, 0]) }
  }

  @Test func errorsNameTheOpAndOperands() throws {
    let x = try Tensor(repeating: 0, shape: [2, 3])
    #expect { try pad(x, before: [0, 3], after: [0, 0], mode: .reflect) } throws: {
      "\($0)" == "pad: f32[2,3]: reflect padding needs each pad smaller than its axis: axis 1 has size 3, pads (3, 0)"
    }
    #expect { try pad(x, before: [2, 0], after: [0, 0], mode: .reflect) } throws: { "\($0)".contains("axis 0 has size 2") }
    #expect { try pad(x, before: [1], after: [1]) } throws: {
      "\($0)" == "pad: f32[2,3]: pads [1], [1] need one entry per axis (rank 2)"
    }
    #expect { try pad(x, before: [-1, 0], after: [0, 0]) } throws: {
      "\($0)" == "pad: f32[2,3]: pads [-1, 0], [0, 0] must not be negative"
    }
    let g = try Tensor(repeating: 0, shape: [3, 4])
    #expect { try padBackward(g, before: [2, 0], after: [2, 0]) } throws: {
      "\($0)" == "padBackward: f32[3,4]: pads [2, 0], [2, 0] are larger than the padded tensor"
    }
    #expect { try padBackward(g, before: [1, 0], after: [1, 0]) } throws: {
      "\($0)" == "padBackward: f32[3,4]: reflect padding needs each pad smaller than its axis: axis 0 has size 1, pads (1, 1)"
    }
    let ints = try Tensor(HostTensor(shape: [4], data: .i32([1, 2, 3, 4])))
    #expect { try padBackward(ints, before: [1], after: [0]) } throws: {
      "\($0)" == "padBackward: i32[4]: operands must share one floating-point dtype; use cast(_:to:)"
    }
  }
}
