import SegCore
import SegTestSupport
import Testing

// MARK: - Concat, slice and centre crop

@Suite struct LayoutTests {
  @Test func concatValues() throws {
    let a = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
    let b = try Tensor(shape: [2, 1], floats: [5, 6])
    #expect(try concat([a, b]).floats() == [1, 2, 5, 3, 4, 6])
    #expect(try concat([a, b], axis: 1).shape == [2, 3])
    let c = try Tensor(shape: [1, 2], floats: [7, 8])
    #expect(try concat([a, c, a], axis: 0).floats() == [1, 2, 3, 4, 7, 8, 1, 2, 3, 4])
    #expect(try concat([a, c, a], axis: -2).shape == [5, 2])
    #expect(try concat([a]).node === a.node)
    let labels = try Tensor(HostTensor(shape: [2], data: .u8([3, 250])))
    let joined = try concat([labels, labels], axis: 0)
    #expect(joined.dtype == .u8)
    #expect(try joined.host().doubles == [3, 250, 3, 250])
  }

  @Test func concatGradients() throws {
    let a = randomHost(TensorType([2, 3, 1, 2], .f64), seed: 1)
    let b = randomHost(TensorType([2, 3, 2, 2], .f64), seed: 2)
    let c = randomHost(TensorType([2, 3, 3, 2], .f64), seed: 3)
    try checkVJP("concat axis 2", inputs: [a, b, c]) { try concat($0, axis: 2) }
    let d = randomHost(TensorType([2, 3, 1, 3], .f64), seed: 4)
    try checkVJP("concat channels", inputs: [a, d]) { try concat($0) }
    try checkVJP("concat with itself", inputs: [b]) { try concat([$0[0], $0[0]], axis: 0) }
  }

  @Test func sliceValuesAndGradients() throws {
    let x = try Tensor(shape: [3, 4], floats: (0..<12).map(Float.init))
    #expect(try slice(x, starts: [1, 1], sizes: [2, 2]).floats() == [5, 6, 9, 10])
    #expect(try slice(x, starts: [0, 3], sizes: [3, 1]).floats() == [3, 7, 11])
    #expect(try slice(x, starts: [2, 0], sizes: [0, 4]).shape == [0, 4])
    #expect(try slice(x, starts: [0, 0], sizes: [3, 4]).node === x.node)
    let h = randomHost(TensorType([2, 5, 3, 2], .f64), seed: 5)
    try checkVJP("slice", inputs: [h]) { try slice($0[0], starts: [1, 1, 0, 1], sizes: [1, 3, 3, 1]) }
    try checkVJP("slice all batches", inputs: [h]) { try slice($0[0], starts: [0, 2, 1, 0], sizes: [2, 3, 2, 2]) }
  }

  @Test func centerCropValuesAndGradients() throws {
    // 5x5 -> 2x2: the odd excess of 3 leaves 1 row above and 2 below.
    let x = try Tensor(shape: [1, 5, 5, 1], floats: (0..<25).map(Float.init))
    let y = try centerCrop(x, height: 2, width: 3)
    #expect(y.shape == [1, 2, 3, 1])
    #expect(try y.floats() == [6, 7, 8, 11, 12, 13])
    #expect(try centerCrop(x, height: 5, width: 5).node === x.node)
    let h = randomHost(TensorType([2, 6, 5, 3], .f64), seed: 6)
    try checkVJP("centerCrop", inputs: [h]) { try centerCrop($0[0], height: 3, width: 2) }
  }

  @Test func errorsNameTheOpAndOperands() throws {
    let a = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
    let b = try Tensor(HostTensor(type: TensorType([2, 1], .f64), repeating: 0))
    #expect { try concat([a, b]) } throws: {
      "\($0)" == "concat: f32[2,2], f64[2,1]: operands must share one dtype; use cast(_:to:)"
    }
    let c = try Tensor(repeating: 0, shape: [3, 1])
    #expect { try concat([a, c]) } throws: {
      "\($0)" == "concat: f32[2,2], f32[3,1]: shapes must be equal except along axis 1"
    }
    let v = try Tensor(repeating: 0, shape: [2])
    #expect { try concat([a, v], axis: 0) } throws: {
      "\($0)" == "concat: f32[2,2], f32[2]: shapes must be equal except along axis 0"
    }
    #expect { try concat([a, a], axis: 2) } throws: {
      "\($0)" == "concat: f32[2,2], f32[2,2]: axis 2 is out of range for rank 2"
    }
    #expect { try concat([]) } throws: { "\($0)" == "concat: needs at least one tensor" }

    #expect { try slice(a, starts: [1, 1], sizes: [2, 1]) } throws: {
      "\($0)" == "slice: f32[2,2]: starts [1, 1] and sizes [2, 1] leave the tensor along axis 0 (size 2)"
    }
    #expect { try slice(a, starts: [-1, 0], sizes: [1, 1]) } throws: { "\($0)".hasPrefix("slice: f32[2,2]: ") }
    #expect { try slice(a, starts: [0], sizes: [1]) } throws: {
      "\($0)" == "slice: f32[2,2]: starts [0] and sizes [1] need one entry per axis (rank 2)"
    }

    let img = try Tensor(repeating: 0, shape: [1, 4, 4, 2])
    #expect { try centerCrop(img, height: 5, width: 2) } throws: {
      "\($0)" == "centerCrop: f32[1,4,4,2]: cannot crop 4x4 to 5x2: the window must fit"
    }
    #expect { try centerCrop(a, height: 1, width: 1) } throws: {
      "\($0)" == "centerCrop: f32[2,2]: expects an NHWC tensor (rank 4)"
    }
  }
}
