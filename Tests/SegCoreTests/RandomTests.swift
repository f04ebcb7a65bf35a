import SegCore
import SegTestSupport
import Testing

// MARK: - Counter-based random masks and dropout

@Suite struct RandomTests {
  func mask(_ shape: Shape, keep: Double, seed: UInt64, offset: UInt64 = 0, dtype: DType = .f32) throws -> [Double] {
    try randomMask(shape: shape, keepProbability: keep, seed: seed, offset: offset, dtype: dtype, on: ReferenceBackend.shared)
      .host().doubles
  }

  @Test func bitsFollowTheDocumentedFunction() throws {
    // Computed independently (Python, from the formula in RandomMask's documentation); the CUDA
    // backend reproduces these.
    #expect((0..<4).map { RandomMask.bits(seed: 0, counter: $0) } == [0, 14_819_496, 7_239_838, 443_485])
    #expect([0, 1, (1 << 40) + 7].map { RandomMask.bits(seed: 42, counter: $0) } == [10_967_530, 12_441_394, 13_462_572])
    let m = try mask([2, 8], keep: 0.5, seed: 0xDEAD_BEEF)
    #expect(m == [2, 2, 0, 0, 2, 0, 0, 2, 2, 2, 0, 0, 0, 0, 2, 2])
  }

  @Test func deterministicPerSeedAndOffset() throws {
    let shape: Shape = [2, 5, 5, 3]
    let a = try mask(shape, keep: 0.5, seed: 7)
    #expect(try mask(shape, keep: 0.5, seed: 7) == a)
    #expect(try mask(shape, keep: 0.5, seed: 8) != a)
    #expect(try mask(shape, keep: 0.5, seed: 7, offset: 1) != a)
    // Element i uses counter offset + i, so shifting the offset shifts the mask.
    let shifted = try mask([150], keep: 0.5, seed: 7, offset: 5)
    #expect(Array(shifted.prefix(145)) == Array(a.suffix(145)))
  }

  @Test func valuesAreZeroOrTheInverseKeep() throws {
    let m = try mask([3, 7], keep: 0.8, seed: 3)
    #expect(m.allSatisfy { $0 == 0 || $0 == Double(Float(1 / 0.8)) })
    #expect(m.contains(0) && m.contains(Double(Float(1 / 0.8))))
    #expect(try mask([3, 7], keep: 1, seed: 3).allSatisfy { $0 == 1 })
    let half = try randomMask(shape: [4], keepProbability: 0.5, seed: 1, dtype: .bf16, on: ReferenceBackend.shared)
    #expect(half.dtype == .bf16)
  }

  @Test func meanOfTheMaskIsOne() throws {
    // Each element is 1/p with probability p, else 0: mean 1, variance (1 - p) / p. The mean of
    // n elements is within 5 standard deviations, sqrt((1 - p) / (p n)), of 1 (a chance of about
    // 6e-7 for a fair generator).
    let n = 4096
    for p in [0.2, 0.5, 0.9] {
      for seed: UInt64 in [0, 1, 12345] {
        let m = try mask([n], keep: p, seed: seed, dtype: .f64)
        let mean = m.reduce(0, +) / Double(n)
        let bound = 5 * ((1 - p) / (p * Double(n))).squareRoot()
        #expect(abs(mean - 1) <= bound, "keep \(p), seed \(seed): mean \(mean), bound \(bound)")
      }
    }
  }

  @Test func dropoutMultipliesByTheMaskAndItsGradientIsTheMask() throws {
    let xh = randomHost(TensorType([2, 3, 3, 2], .f64), seed: 31)
    let x = try Tensor(xh, on: ReferenceBackend.shared)
    let m = try mask(xh.shape, keep: 0.7, seed: 9, offset: 4, dtype: .f64)
    let y = try dropout(x, rate: 0.3, seed: 9, offset: 4)
    #expect(try y.host().doubles == zip(xh.doubles, m).map { $0 * $1 })
    let ones = try Tensor(repeating: 1, shape: y.shape, dtype: .f64, on: ReferenceBackend.shared)
    let g = try gradients(of: y, wrt: [x], seed: ones)[0]
    #expect(try g.host().doubles == m)
    try checkVJP("dropout", inputs: [xh]) { try dropout($0[0], rate: 0.4, seed: 2, offset: 100) }
    #expect(try dropout(x, rate: 0, seed: 9).node === x.node)
  }

  @Test func errorsNameTheOpAndOperands() throws {
    #expect { try randomMask(shape: [2, 2], keepProbability: 0, seed: 1, on: ReferenceBackend.shared) } throws: {
      "\($0)" == "randomMask: f32[2,2]: keepProbability 0.0 must be in (0, 1]"
    }
    #expect { try randomMask(shape: [2], keepProbability: 0.5, seed: 1, dtype: .i32, on: ReferenceBackend.shared) } throws: {
      "\($0)" == "randomMask: i32[2]: the mask needs a floating-point dtype"
    }
    let x = try Tensor(repeating: 1, shape: [3])
    #expect { try dropout(x, rate: 1, seed: 1) } throws: { "\($0)" == "dropout: f32[3]: rate 1.0 must be in [0, 1)" }
    #expect { try dropout(x, rate: -0.1, seed: 1) } throws: { "\($0)".hasPrefix("dropout: f32[3]: rate -0.1") }
    let ints = try Tensor(HostTensor(shape: [2], data: .i32([1, 2])))
    #expect { try dropout(ints, rate: 0.5, seed: 1) } throws: {
      "\($0)" == "dropout: i32[2]: needs a floating-point tensor; use cast(_:to:)"
    }
  }
}
