import SegCore
import SegTestSupport
import Testing

// MARK: - The skip connection's crop and concat as one op

@Suite struct CropConcatTests {
  /// The fused op is the concat of `a` and the centre crop of the skip, odd margins included.
  @Test func valuesAreTheCropThenTheConcat() throws {
    for (a, s) in [([2, 3, 4, 3], [2, 6, 7, 5]), ([1, 2, 2, 1], [1, 2, 2, 4]), ([1, 4, 3, 16], [1, 8, 7, 8])] {
      let x = try Tensor(randomHost(TensorType(Shape(a), .f32), seed: 1))
      let skip = try Tensor(randomHost(TensorType(Shape(s), .f32), seed: 2))
      let expected = try concat([x, centerCrop(skip, height: a[1], width: a[2])])
      let y = try cropConcat(x, skip)
      #expect(y.shape == expected.shape)
      #expect(try y.floats() == expected.floats(), "\(a) beside \(s)")
    }
  }

  /// Its gradient, against finite differences, for each input alone and both (the fused backward).
  @Test func gradientsMatchFiniteDifferences() throws {
    let a = randomHost(TensorType([2, 3, 2, 2], .f64), seed: 3)
    let s = randomHost(TensorType([2, 6, 5, 3], .f64), seed: 4)
    try checkVJP("cropConcat", inputs: [a, s]) { try cropConcat($0[0], $0[1]) }
    try checkVJP("cropConcat, a only", inputs: [a, s], differentiable: [true, false]) { try cropConcat($0[0], $0[1]) }
    try checkVJP("cropConcat, skip only", inputs: [a, s], differentiable: [false, true]) { try cropConcat($0[0], $0[1]) }
  }

  /// Both gradients come from one op: the split channels, and the rest zero-padded about the centre.
  @Test func backwardIsOneOpOfTwoOutputs() throws {
    let g = try Tensor(shape: [1, 1, 2, 3], floats: [1, 2, 3, 4, 5, 6])
    let r = try cropConcatBackward(g, channels: 1, skipHeight: 2, skipWidth: 3)
    #expect(try r.a.floats() == [1, 4])
    // The 1x2 window of a 2x3 skip starts at (0, 0): the odd row and column are below and right.
    #expect(r.skip.shape == [1, 2, 3, 2])
    #expect(try r.skip.floats() == [2, 3, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0])
    let x = try Tensor(repeating: 1, shape: [1, 1, 2, 1]), skip = try Tensor(repeating: 1, shape: [1, 2, 3, 2])
    let grads = try gradients(of: cropConcat(x, skip), wrt: [x, skip], seed: g)
    #expect(grads[0].node.op is CropConcatBackward && grads[1].node.op is CropConcatBackward)
  }

  @Test func errorsNameTheOpAndOperands() throws {
    let a = try Tensor(repeating: 0, shape: [1, 4, 4, 2])
    #expect { try cropConcat(a, Tensor(repeating: 0, shape: [1, 3, 5, 2])) } throws: {
      "\($0)" == "cropConcat: f32[1,4,4,2], f32[1,3,5,2]: the skip must have the batch of the first operand and be at least its height and width"
    }
    #expect { try cropConcat(a, Tensor(repeating: 0, shape: [4, 4, 2])) } throws: {
      "\($0)" == "cropConcat: f32[1,4,4,2], f32[4,4,2]: expects two NHWC tensors (rank 4)"
    }
    #expect { try cropConcatBackward(a, channels: 3, skipHeight: 3, skipWidth: 4) } throws: {
      "\($0)" == "cropConcatBackward: f32[1,4,4,2]: cannot split 2 channels at 3 and pad 4x4 to 3x4"
    }
  }
}
