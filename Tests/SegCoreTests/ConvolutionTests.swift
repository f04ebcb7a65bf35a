import SegCore
import SegTestSupport
import Testing

// MARK: - Helpers

private func f64(_ dims: [Int], seed: UInt64, in range: Range<Double> = -1..<1) -> HostTensor {
  randomHost(TensorType(Shape(dims), .f64), seed: seed, in: range)
}

/// Expects `body` to throw an error whose text contains every one of `parts`.
private func expectError(
  _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Tensor
) {
  #expect(sourceLocation: sourceLocation) { _ = try body() } throws: { error in
    let text = "\(error)"
    return parts.allSatisfy { text.contains($0) }
  }
}

/// Keras's transposed conv written as a scatter, independently of the op: each input pixel
/// x[n,i,j,ci] adds x * w[kh,kw,co,ci] to out[n, i*sh+kh-top, j*sw+kw-left, co].
private func scatterTranspose(
  _ x: HostTensor, _ w: HostTensor, bias: HostTensor?, strides s: (Int, Int), top: Int, left: Int,
  outH: Int, outW: Int
) -> HostTensor {
  let (n, h, wd, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (kh, kw, cout) = (w.shape[0], w.shape[1], w.shape[2])
  let xv = x.doubles, wv = w.doubles
  var out = [Double](repeating: 0, count: n * outH * outW * cout)
  for b in 0..<n {
    for i in 0..<h {
      for j in 0..<wd {
        for ci in 0..<cin {
          let v = xv[((b * h + i) * wd + j) * cin + ci]
          for u in 0..<kh {
            for t in 0..<kw {
              let (oi, oj) = (i * s.0 + u - top, j * s.1 + t - left)
              guard (0..<outH).contains(oi), (0..<outW).contains(oj) else { continue }
              for co in 0..<cout {
                out[((b * outH + oi) * outW + oj) * cout + co] += v * wv[((u * kw + t) * cout + co) * cin + ci]
              }
            }
          }
        }
      }
    }
  }
  if let bias {
    let bv = bias.doubles
    for k in out.indices { out[k] += bv[k % cout] }
  }
  return HostTensor(type: TensorType([n, outH, outW, cout], .f64), doubles: out)
}

// MARK: - Gradients

@Suite struct ConvolutionGradientTests {
  let x = f64([2, 5, 6, 3], seed: 11)
  let w = f64([3, 3, 3, 4], seed: 12)
  let bias = f64([4], seed: 13)
  let paddings: [ConvPadding] = [.valid, .same, .explicit(Padding2D(top: 2, bottom: 0, left: 1, right: 3))]
  let strides = [(1, 1), (2, 2), (2, 1)]

  @Test func conv2dPaddingsAndStrides() throws {
    for p in paddings {
      for s in strides {
        try checkVJP("conv2d \(p) \(s)", inputs: [x, w]) { try conv2d($0[0], $0[1], strides: s, padding: p) }
        try checkVJP("conv2d+bias \(p) \(s)", inputs: [x, w, bias]) {
          try conv2d($0[0], $0[1], bias: $0[2], strides: s, padding: p)
        }
      }
    }
  }

  @Test func conv2dOddSizes() throws {
    // 1x1 images with 'same' padding: every tap but the centre reads padding.
    let tiny = f64([3, 1, 1, 5], seed: 14)
    let w5 = f64([3, 3, 5, 7], seed: 15)
    try checkVJP("conv2d 1x1 image same", inputs: [tiny, w5, f64([7], seed: 16)]) {
      try conv2d($0[0], $0[1], bias: $0[2], padding: .same)
    }
    try checkVJP("conv2d 1x1 image same stride 2", inputs: [tiny, w5]) {
      try conv2d($0[0], $0[1], strides: (2, 2), padding: .same)
    }
    // A 1x1 kernel and a non-square kernel over an odd image.
    try checkVJP("conv2d 1x1 kernel", inputs: [x, f64([1, 1, 3, 2], seed: 17)]) { try conv2d($0[0], $0[1]) }
    try checkVJP("conv2d 2x3 kernel same stride 2", inputs: [x, f64([2, 3, 3, 5], seed: 18)]) {
      try conv2d($0[0], $0[1], strides: (2, 2), padding: .same)
    }
  }

  @Test func conv2dFusedRelu() throws {
    for (p, s) in [(ConvPadding.valid, (1, 1)), (.same, (2, 2)), (paddings[2], (1, 2))] {
      // Finite differences are only valid away from the kink at 0.
      let pre = try conv2d(Tensor(x), Tensor(w), bias: Tensor(bias), strides: s, padding: p).host().doubles
      let margin = pre.map(abs).min() ?? 0
      try #require(margin > 1e-3, "pre-activation \(margin) too close to 0 for \(p) \(s)")
      #expect(pre.contains { $0 < 0 } && pre.contains { $0 > 0 }, "both sides of the kink are exercised")
      try checkVJP("conv2d+bias+relu \(p) \(s)", inputs: [x, w, bias]) {
        try conv2d($0[0], $0[1], bias: $0[2], strides: s, padding: p, activation: .relu)
      }
    }
  }

  @Test func conv2dBackwardDataAndFilter() throws {
    // (input size, kernel, strides, padding); 6x6 / 3x3 / stride 2 valid leaves the last row unread.
    let cases: [((Int, Int), (Int, Int), (Int, Int), ConvPadding)] = [
      ((5, 6), (3, 3), (1, 1), .valid),
      ((5, 6), (3, 3), (2, 2), .same),
      ((6, 6), (3, 3), (2, 2), .valid),
      ((5, 6), (2, 3), (2, 1), .explicit(Padding2D(top: 1, bottom: 0, left: 0, right: 2))),
      ((1, 1), (3, 3), (1, 1), .same),
    ]
    for (k, (size, kernel, s, p)) in cases.enumerated() {
      let pad = p.resolve(input: size, kernel: kernel, strides: s)
      let g = ConvGeometry(strides: s, padding: pad)
      let out = try #require(g.outputSize(input: size, kernel: kernel))
      let seed = UInt64(100 + 10 * k)
      let dy = f64([2, out.0, out.1, 4], seed: seed)
      let filter = f64([kernel.0, kernel.1, 3, 4], seed: seed + 1)
      let input = f64([2, size.0, size.1, 3], seed: seed + 2)
      try checkVJP("conv2dBackwardData \(size) \(g)", inputs: [dy, filter]) {
        try conv2dBackwardData($0[0], $0[1], inputSize: size, geometry: g)
      }
      try checkVJP("conv2dBackwardFilter \(size) \(g)", inputs: [input, dy]) {
        try conv2dBackwardFilter($0[0], $0[1], kernelSize: kernel, geometry: g)
      }
    }
  }

  @Test func conv2dTransposeWithBias() throws {
    let xt = f64([2, 3, 4, 3], seed: 21)
    for k in [2, 3] {
      let wt = f64([k, k, 5, 3], seed: UInt64(20 + k))
      for p in [ConvPadding.same, .valid] {
        try checkVJP("conv2dTranspose k\(k) \(p)", inputs: [xt, wt, f64([5], seed: 24)]) {
          try conv2dTranspose($0[0], $0[1], bias: $0[2], strides: (2, 2), padding: p)
        }
      }
    }
  }
}

// MARK: - Values

@Suite struct ConvolutionValueTests {
  /// x = 1...9 as a 3x3 one-channel image.
  let nine = HostTensor(type: TensorType([1, 3, 3, 1], .f32), doubles: (1...9).map(Double.init))

  @Test func handComputedValidWithBiasAndRelu() throws {
    // Channel 0 is [[1,2],[3,4]], channel 1 picks the bottom-right tap; HWIO interleaves them.
    let w = try Tensor(shape: [2, 2, 1, 2], floats: [1, 0, 2, 0, 3, 0, 4, 1])
    let y = try conv2d(Tensor(nine), w)
    #expect(y.type == TensorType([1, 2, 2, 2], .f32))
    #expect(try y.floats() == [37, 5, 47, 6, 67, 8, 77, 9])
    let b = try Tensor(shape: [2], floats: [1, -6])
    #expect(try conv2d(Tensor(nine), w, bias: b).floats() == [38, -1, 48, 0, 68, 2, 78, 3])
    #expect(try conv2d(Tensor(nine), w, bias: b, activation: .relu).floats() == [38, 0, 48, 0, 68, 2, 78, 3])
  }

  @Test func handComputedSameStride2() throws {
    // 'same' with a 3x3 kernel and stride 2 over 3x3 pads one pixel on every side.
    let ones = try Tensor(repeating: 1, shape: [3, 3, 1, 1])
    let y = try conv2d(Tensor(nine), ones, strides: (2, 2), padding: .same)
    #expect(y.shape == [1, 2, 2, 1])
    #expect(try y.floats() == [12, 16, 24, 28])
  }

  @Test func handComputedAsymmetricPaddingAndStride() throws {
    let x = try Tensor(shape: [1, 2, 2, 1], floats: [1, 2, 3, 4])
    let two = try Tensor(shape: [1, 1, 1, 1], floats: [2])
    let p = ConvPadding.explicit(Padding2D(top: 1, bottom: 0, left: 0, right: 2))
    let full = try conv2d(x, two, padding: p)
    #expect(full.shape == [1, 3, 4, 1])
    #expect(try full.floats() == [0, 0, 0, 0, 2, 4, 0, 0, 6, 8, 0, 0])
    let strided = try conv2d(x, two, strides: (2, 1), padding: p)
    #expect(strided.shape == [1, 2, 4, 1])
    #expect(try strided.floats() == [0, 0, 0, 0, 6, 8, 0, 0])
  }

  @Test func samePaddingPutsTheExtraPixelBottomRight() {
    let p = ConvPadding.same.resolve(input: (4, 5), kernel: (3, 2), strides: (2, 1))
    #expect(p == Padding2D(top: 0, bottom: 1, left: 0, right: 1))
    #expect(ConvPadding.same.resolve(input: (1, 1), kernel: (3, 3), strides: (1, 1)) == Padding2D(top: 1, bottom: 1, left: 1, right: 1))
  }

  @Test func transposeMatchesScatter() throws {
    let x = f64([2, 3, 4, 3], seed: 31)
    let bias = f64([5], seed: 32)
    for k in [2, 3] {
      let w = f64([k, k, 5, 3], seed: UInt64(33 + k))
      for s in [(2, 2), (2, 1)] {
        for same in [true, false] {
          // Keras 'same' pads K - s in all, the smaller half first; 'valid' pads nothing.
          let (top, left) = same ? (max(k - s.0, 0) / 2, max(k - s.1, 0) / 2) : (0, 0)
          let (outH, outW) = same ? (3 * s.0, 4 * s.1) : (2 * s.0 + k, 3 * s.1 + k)
          let y = try conv2dTranspose(Tensor(x), Tensor(w), bias: Tensor(bias), strides: s, padding: same ? .same : .valid)
          let expected = scatterTranspose(x, w, bias: bias, strides: s, top: top, left: left, outH: outH, outW: outW)
          expectClose(try y.host(), expected, atol: 1e-12, rtol: 1e-12, "transpose k\(k) \(s) \(same ? "same" : "valid")")
        }
      }
    }
  }

  @Test func transposeOutputSizes() throws {
    let x = try Tensor(repeating: 1, shape: [1, 28, 28, 1])
    for (k, same, size) in [(3, true, 56), (3, false, 57), (2, true, 56), (2, false, 56)] {
      let w = try Tensor(repeating: 1, shape: [k, k, 2, 1])
      let y = try conv2dTranspose(x, w, strides: (2, 2), padding: same ? .same : .valid)
      #expect(y.type == TensorType([1, size, size, 2], .f32), "k\(k) \(same ? "same" : "valid")")
    }
    let odd = try Tensor(repeating: 1, shape: [2, 1, 3, 4])
    let y = try conv2dTranspose(odd, Tensor(repeating: 1, shape: [3, 3, 5, 4]), strides: (2, 2), padding: .valid)
    #expect(y.shape == [2, 3, 7, 5])
  }
}

// MARK: - Errors

@Suite struct ConvolutionErrorTests {
  let x = try! Tensor(repeating: 1, shape: [1, 5, 5, 3])
  let w = try! Tensor(repeating: 1, shape: [3, 3, 3, 4])

  @Test func conv2dShapeErrors() throws {
    expectError(["conv2d:", "f32[1,5,5,3]", "f32[3,3,2,4]", "channels"]) {
      try conv2d(x, Tensor(repeating: 1, shape: [3, 3, 2, 4]))
    }
    expectError(["conv2d:", "f32[1,5,5,3]", "f32[3]", "bias"]) {
      try conv2d(x, w, bias: Tensor(repeating: 1, shape: [3]))
    }
    expectError(["conv2d:", "f32[1,2,2,3]", "f32[3,3,3,4]", "does not fit"]) {
      try conv2d(Tensor(repeating: 1, shape: [1, 2, 2, 3]), w)
    }
    expectError(["conv2d:", "f32[5,5,3]", "rank 4"]) { try conv2d(Tensor(repeating: 1, shape: [5, 5, 3]), w) }
    expectError(["conv2d:", "f32[", "strides"]) { try conv2d(x, w, strides: (0, 1), padding: .same) }
    expectError(["conv2d:", "f32[", "padding"]) {
      try conv2d(x, w, padding: .explicit(Padding2D(top: -1, bottom: 0, left: 0, right: 0)))
    }
    expectError(["conv2d:", "f32[1,5,5,3]", "f64[3,3,3,4]", "dtype"]) {
      try conv2d(x, Tensor(repeating: 1, shape: [3, 3, 3, 4], dtype: .f64))
    }
  }

  @Test func transposeAndBackwardErrors() throws {
    let xt = try Tensor(repeating: 1, shape: [1, 4, 4, 3])
    expectError(["conv2dTranspose:", "f32[1,4,4,3]", "f32[3,3,4,2]", "channels"]) {
      try conv2dTranspose(xt, Tensor(repeating: 1, shape: [3, 3, 4, 2]))
    }
    expectError(["conv2dTranspose:", "f32[4]", "bias"]) {
      try conv2dTranspose(xt, Tensor(repeating: 1, shape: [3, 3, 2, 3]), bias: Tensor(repeating: 1, shape: [4]))
    }
    expectError(["conv2dTranspose:", "f32[1,4,4,3]", "strides"]) {
      try conv2dTranspose(xt, Tensor(repeating: 1, shape: [3, 3, 2, 3]), strides: (2, 0))
    }
    expectError(["conv2dTranspose:", "f32[1,1,1,3]", "empty"]) {
      let p = ConvPadding.explicit(Padding2D(top: 1, bottom: 1, left: 0, right: 0))
      return try conv2dTranspose(
        Tensor(repeating: 1, shape: [1, 1, 1, 3]), Tensor(repeating: 1, shape: [1, 1, 2, 3]), strides: (1, 1), padding: p)
    }
    let g = ConvGeometry(strides: (1, 1), padding: .zero)
    expectError(["conv2dBackwardFilter:", "f32[1,5,5,3]", "empty"]) {
      try conv2dBackwardFilter(x, Tensor(repeating: 1, shape: [1, 6, 6, 4]), kernelSize: (0, 0), geometry: g)
    }
    expectError(["conv2d:", "f32[0,3,3,4]", "empty"]) { try conv2d(x, Tensor(repeating: 1, shape: [0, 3, 3, 4])) }
    expectError(["conv2dBackwardData:", "f32[1,3,3,4]", "does not give"]) {
      try conv2dBackwardData(Tensor(repeating: 1, shape: [1, 3, 3, 4]), w, inputSize: (6, 5), geometry: g)
    }
    expectError(["conv2dBackwardFilter:", "f32[1,5,5,3]", "f32[1,3,3,4]", "does not give"]) {
      try conv2dBackwardFilter(x, Tensor(repeating: 1, shape: [1, 3, 3, 4]), kernelSize: (2, 2), geometry: g)
    }
  }
}
