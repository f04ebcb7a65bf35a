import SegCore
import SegTestSupport
import Testing

// MARK: - Helpers

/// Expects `body` to throw an error whose text contains every one of `parts`.
private func expectError(
  _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Tensor
) {
  #expect(sourceLocation: sourceLocation) { _ = try body() } throws: { error in
    let text = "\(error)"
    return parts.allSatisfy { text.contains($0) }
  }
}

/// Distinct values 0.01 apart in a seeded random order, so that no finite-difference step
/// (about 1e-6) can change which element of a window is the maximum.
private func distinct(_ dims: [Int], seed: UInt64) -> HostTensor {
  var rng = SeededRandom(seed: seed)
  let n = Shape(dims).count
  let values = Array(0..<n).shuffled(using: &rng).map { Double($0) * 0.01 - 1 }
  return HostTensor(type: TensorType(Shape(dims), .f64), doubles: values)
}

/// Max-pool backward by brute force: for each window, the values in row-major (kh, kw) order, the
/// first index of their maximum, and dy added there.
private func routedByBruteForce(
  _ x: HostTensor, _ dy: HostTensor, window: (Int, Int), strides: (Int, Int)
) -> HostTensor {
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (oh, ow) = (dy.shape[1], dy.shape[2])
  let xv = x.doubles, dv = dy.doubles
  var out = [Double](repeating: 0, count: xv.count)
  for b in 0..<n {
    for i in 0..<oh {
      for j in 0..<ow {
        for ch in 0..<c {
          var indices: [Int] = []
          for u in 0..<window.0 {
            for v in 0..<window.1 { indices.append(((b * h + i * strides.0 + u) * w + j * strides.1 + v) * c + ch) }
          }
          let values = indices.map { xv[$0] }
          let first = values.firstIndex(of: values.max()!)!
          out[indices[first]] += dv[((b * oh + i) * ow + j) * c + ch]
        }
      }
    }
  }
  return HostTensor(type: x.type, doubles: out)
}

// MARK: - Gradients

@Suite struct PoolingGradientTests {
  @Test func maxPool2dVJP() throws {
    // 5 rows with 2x2 stride 2 drops the last row; 3x3 stride 2 windows overlap.
    try checkVJP("maxPool2d 2x2/2", inputs: [distinct([2, 5, 6, 3], seed: 1)]) { try maxPool2d($0[0]) }
    try checkVJP("maxPool2d 3x3/2", inputs: [distinct([2, 5, 7, 3], seed: 2)]) {
      try maxPool2d($0[0], window: (3, 3), strides: (2, 2))
    }
    try checkVJP("maxPool2d 2x3/1", inputs: [distinct([1, 4, 5, 5], seed: 3)]) {
      try maxPool2d($0[0], window: (2, 3), strides: (1, 1))
    }
    try checkVJP("maxPool2d 1x1 image", inputs: [distinct([3, 1, 1, 2], seed: 4)]) {
      try maxPool2d($0[0], window: (1, 1), strides: (1, 1))
    }
  }
}

// MARK: - Values

@Suite struct PoolingValueTests {
  let x4 = try! Tensor(shape: [1, 4, 4, 1], floats: [
    1, 5, 2, 0,
    3, 4, 8, 7,
    6, 9, 1, 2,
    0, 9, 3, 3,
  ])

  @Test func handComputedForwardAndBackward() throws {
    let y = try maxPool2d(x4)
    #expect(y.shape == [1, 2, 2, 1])
    #expect(try y.floats() == [5, 8, 9, 3])
    // The two 9s and the two 3s tie: the first in row-major order takes the gradient.
    let dy = try Tensor(shape: [1, 2, 2, 1], floats: [10, 20, 30, 40])
    #expect(try maxPool2dBackward(x4, dy).floats() == [
      0, 10, 0, 0,
      0, 0, 20, 0,
      0, 30, 0, 0,
      0, 0, 40, 0,
    ])
  }

  @Test func backwardEqualsTheVJP() throws {
    for (window, strides) in [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 2), (1, 2))] {
      let xh = distinct([2, 5, 7, 3], seed: 5)
      let x = try Tensor(xh)
      let y = try maxPool2d(x, window: window, strides: strides)
      let dyh = randomHost(y.type, seed: 6)
      let dy = try Tensor(dyh)
      let viaVJP = try gradients(of: y, wrt: [x], seed: dy)[0].host()
      let direct = try maxPool2dBackward(x, dy, window: window, strides: strides).host()
      expectClose(direct, viaVJP, atol: 0, rtol: 0, "backward vs VJP \(window) \(strides)")
      expectClose(direct, routedByBruteForce(xh, dyh, window: window, strides: strides), atol: 1e-15, rtol: 0,
                  "backward vs brute force \(window) \(strides)")
    }
  }

  @Test func overlappingWindowsAddUp() throws {
    // The centre of a 5x5 image is in all four 3x3 stride-2 windows and is every window's maximum.
    var values = (0..<25).map(Float.init)
    values[12] = 100
    let x = try Tensor(shape: [1, 5, 5, 1], floats: values)
    #expect(try maxPool2d(x, window: (3, 3), strides: (2, 2)).floats() == [100, 100, 100, 100])
    let dy = try Tensor(shape: [1, 2, 2, 1], floats: [1, 2, 3, 4])
    let dx = try maxPool2dBackward(x, dy, window: (3, 3), strides: (2, 2)).floats()
    #expect(dx[12] == 10)
    #expect(dx.enumerated().allSatisfy { $0.offset == 12 || $0.element == 0 })
  }

  @Test func constantWindowsRouteToTheirFirstElement() throws {
    let x = try Tensor(repeating: 0.5, shape: [2, 5, 5, 2])
    let y = try maxPool2d(x, window: (3, 3), strides: (2, 2))
    let dy = try Tensor(HostTensor(type: y.type, doubles: (1...y.shape.count).map(Double.init)))
    let dx = try maxPool2dBackward(x, dy, window: (3, 3), strides: (2, 2)).host().doubles
    let d = try dy.host().doubles
    for b in 0..<2 {
      for r in 0..<5 {
        for c in 0..<5 {
          for ch in 0..<2 {
            // Windows start at rows/columns 0 and 2; a window's first element is its top-left.
            let starts = r % 2 == 0 && r <= 2 && c % 2 == 0 && c <= 2
            let expected = starts ? d[((b * 2 + r / 2) * 2 + c / 2) * 2 + ch] : 0
            #expect(dx[((b * 5 + r) * 5 + c) * 2 + ch] == expected, "(\(b),\(r),\(c),\(ch))")
          }
        }
      }
    }
  }

  @Test func nanPropagates() throws {
    let x = try Tensor(shape: [1, 2, 2, 1], floats: [1, .nan, 3, 2])
    #expect(try maxPool2d(x).floats()[0].isNaN)
  }
}

// MARK: - Errors

@Suite struct PoolingErrorTests {
  @Test func shapeErrors() throws {
    expectError(["maxPool2d:", "f32[1,2,2,3]", "window"]) {
      try maxPool2d(Tensor(repeating: 1, shape: [1, 2, 2, 3]), window: (3, 3), strides: (1, 1))
    }
    expectError(["maxPool2d:", "f32[4,4,3]", "rank 4"]) { try maxPool2d(Tensor(repeating: 1, shape: [4, 4, 3])) }
    expectError(["maxPool2d:", "f32[1,4,4,3]", "window"]) {
      try maxPool2d(Tensor(repeating: 1, shape: [1, 4, 4, 3]), strides: (0, 2))
    }
    expectError(["maxPool2dBackward:", "f32[1,4,4,3]", "f32[1,3,3,3]", "pooled shape"]) {
      try maxPool2dBackward(Tensor(repeating: 1, shape: [1, 4, 4, 3]), Tensor(repeating: 1, shape: [1, 3, 3, 3]))
    }
  }
}
