import SegCore
import SegTestSupport
import Testing

// MARK: - Cast

@Suite struct CastTests {
  @Test func valuesRoundAsCCasts() throws {
    let x = try Tensor(shape: [5], floats: [1.5, -2.7, 300, -1, 0.999])
    #expect(try cast(x, to: .i32).host().doubles == [1, -2, 300, -1, 0])
    // Truncated toward zero, then wrapped into 0..<256.
    #expect(try cast(x, to: .u8).host().doubles == [1, 254, 44, 255, 0])
    let third = try Tensor(HostTensor(type: TensorType([2], .f64), doubles: [1.0 / 3, 1e-30]))
    #expect(try cast(third, to: .f32).floats() == [Float(1.0 / 3), Float(1e-30)])
    #expect(try cast(third, to: .f16).host().doubles == [Double(Float(Float16(Float(1.0 / 3)))), 0])
    #expect(try cast(third, to: .bf16).host().doubles == [DType.bf16.round(1.0 / 3), DType.bf16.round(1e-30)])
    let bytes = try Tensor(HostTensor(shape: [3], data: .u8([0, 128, 255])))
    let wide = try cast(bytes, to: .i32)
    #expect(wide.dtype == .i32 && wide.shape == [3])
    #expect(try wide.host().doubles == [0, 128, 255])
    #expect(try cast(bytes, to: .f32).floats() == [0, 128, 255])
    #expect(try cast(x, to: .f32).node === x.node)
  }

  @Test func floatCastsPassTheGradientBack() throws {
    // Cast is linear, so a large step keeps f32 rounding of the outputs out of the difference.
    let x = randomHost(TensorType([2, 3, 1], .f64), seed: 41)
    try checkVJP("cast f64 -> f32", inputs: [x], eps: 1e-2, tolerance: 1e-5) { try cast($0[0], to: .f32) }
    try checkVJP("cast f64 -> f32 -> f64", inputs: [x], eps: 1e-2, tolerance: 1e-5) {
      try cast(cast($0[0], to: .f32), to: .f64) * 3
    }
    for low in [DType.f16, .bf16, .f32] {
      let h = try Tensor(HostTensor(type: TensorType([3], low), doubles: [1, 2, 3]))
      let g = try gradients(of: sum(cast(h, to: .f64) * 2), wrt: [h])[0]
      #expect(g.dtype == low)
      #expect(try g.host().doubles == [2, 2, 2])
    }
  }

  @Test func integerCastsHaveNoGradient() throws {
    let x = try Tensor(shape: [3], floats: [0.5, 1.5, 2.5])
    let g = try gradients(of: sum(cast(cast(x, to: .i32), to: .f32) + x), wrt: [x])[0]
    // Only the direct path contributes: the path through i32 carries nothing.
    #expect(try g.floats() == [1, 1, 1])
    let ints = try Tensor(HostTensor(shape: [2], data: .i32([1, 2])))
    let back = try Cast(dtype: .f32).vjp(
      [ints], output: cast(ints, to: .f32), cotangent: Tensor(repeating: 1, shape: [2]), needed: [true])
    #expect(back.count == 1 && back[0] == nil)
  }

  @Test func wrongOperandCountNamesTheOp() throws {
    #expect { try Cast(dtype: .f32).outputType([TensorType([2], .f64), TensorType([2], .f64)]) } throws: {
      "\($0)" == "cast: f64[2], f64[2]: expects 1 operands, got 2"
    }
  }
}

// MARK: - Argmax and one-hot

@Suite struct LabelTests {
  @Test func argmaxValues() throws {
    let x = try Tensor(shape: [2, 3], floats: [1, 3, 3, 5, -1, 4])
    let last = try argmax(x)
    #expect(last.type == TensorType([2], .i32))
    // Ties go to the first maximum.
    #expect(try last.host().doubles == [1, 0])
    let first = try argmax(x, axis: 0)
    #expect(try first.host().doubles == [1, 0, 1])
    #expect(try argmax(x, axis: -2).host().doubles == [1, 0, 1])
    // NHWC logits -> per-pixel class, batch 2.
    let logits = try Tensor(shape: [2, 1, 2, 3], floats: [0, 1, 2, 9, 1, 2, 0, 0, 0, -1, -2, -0.5])
    let classes = try argmax(logits)
    #expect(classes.shape == [2, 1, 2])
    #expect(try classes.host().doubles == [2, 0, 0, 2])
    let ints = try Tensor(HostTensor(shape: [1, 4], data: .u8([3, 7, 7, 1])))
    #expect(try argmax(ints).host().doubles == [1])
  }

  @Test func argmaxTakesTheFirstNaN() throws {
    let x = try Tensor(shape: [3, 3], floats: [1, .nan, 5, .nan, 9, .nan, 2, 8, 3])
    #expect(try argmax(x).host().doubles == [1, 0, 1])
  }

  @Test func oneHotValues() throws {
    let labels = try Tensor(HostTensor(shape: [2, 2], data: .i32([0, 2, 1, 0])))
    let y = try oneHot(labels, classes: 3)
    #expect(y.type == TensorType([2, 2, 3], .f32))
    #expect(try y.floats() == [1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0])
    let bytes = try Tensor(HostTensor(shape: [3], data: .u8([1, 0, 1])))
    let z = try oneHot(bytes, classes: 2, dtype: .f64)
    #expect(z.type == TensorType([3, 2], .f64))
    #expect(try z.host().doubles == [0, 1, 1, 0, 0, 1])
    #expect(try oneHot(bytes, classes: 2, dtype: .u8).dtype == .u8)
    // argmax undoes oneHot.
    #expect(try argmax(y).host().doubles == [0, 2, 1, 0])
  }

  @Test func labelOpsHaveNoGradient() throws {
    let x = try Tensor(shape: [2], floats: [1, 2])
    let back = try ArgMax(axis: 0).vjp(
      [x], output: argmax(x), cotangent: Tensor(HostTensor(shape: [], data: .i32([1]))), needed: [true])
    #expect(back.count == 1 && back[0] == nil)
    let labels = try Tensor(HostTensor(shape: [2], data: .i32([0, 1])))
    let y = try oneHot(labels, classes: 2)
    #expect(try OneHot(classes: 2, dtype: .f32).vjp([labels], output: y, cotangent: y, needed: [true]).count == 1)
    #expect(try OneHot(classes: 2, dtype: .f32).vjp([labels], output: y, cotangent: y, needed: [true])[0] == nil)
  }

  @Test func badLabelsAreNamed() throws {
    let labels = try Tensor(HostTensor(shape: [2, 2], data: .i32([0, 3, 1, 0])))
    #expect { try oneHot(labels, classes: 3) } throws: {
      "\($0)" == "oneHot: i32[2,2]: label 3 at index 1 is outside 0..<3"
    }
    let negative = try Tensor(HostTensor(shape: [3], data: .i32([0, 1, -1])))
    #expect { try oneHot(negative, classes: 2) } throws: {
      "\($0)" == "oneHot: i32[3]: label -1 at index 2 is outside 0..<2"
    }
    let bytes = try Tensor(HostTensor(shape: [1], data: .u8([255])))
    #expect { try oneHot(bytes, classes: 2) } throws: { "\($0)" == "oneHot: u8[1]: label 255 at index 0 is outside 0..<2" }
  }

  @Test func errorsNameTheOpAndOperands() throws {
    let x = try Tensor(repeating: 0, shape: [2, 3])
    #expect { try argmax(x, axis: 2) } throws: { "\($0)" == "argmax: f32[2,3]: axis 2 is out of range for rank 2" }
    let empty = try Tensor(repeating: 0, shape: [2, 0])
    #expect { try argmax(empty) } throws: { "\($0)" == "argmax: f32[2,0]: axis 1 is empty: there is no maximum" }
    #expect { try oneHot(x, classes: 2) } throws: { "\($0)" == "oneHot: f32[2,3]: labels must be i32 or u8; use cast(_:to:)" }
    let labels = try Tensor(HostTensor(shape: [1], data: .u8([0])))
    #expect { try oneHot(labels, classes: 0) } throws: { "\($0)" == "oneHot: u8[1]: classes must be at least 1, got 0" }
  }
}
