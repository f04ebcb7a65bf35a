import SegTestSupport
import Testing

// Testable: Sum, BroadcastTo and Reshape have no public initialisers.
@testable import SegCore
@testable import SegCPU

// MARK: - Running a Swift kernel on host tensors

/// Runs the CPU table's "swift" candidate for `op` (its Swift kernel) on `inputs` uploaded
/// row-major and returns its output.
func runSwiftKernel(_ op: any Primitive, _ inputs: [HostTensor]) throws -> HostTensor {
  let cpu = CPUBackend.shared
  let outType = try op.outputType(inputs.map(\.type))
  let operands = try inputs.map { Operand(storage: try cpu.upload($0), type: $0.type) }
  let outputs = try #require(
    try cpu.kernels.run(candidate: "swift", op, operands, outputs: [outType]),
    "the Swift kernel for \(op.kind) declined \(inputs.map(\.type))")
  return try cpu.download(outputs[0], type: outType)
}

/// Expects the Swift kernel to match the op's reference kernel on `inputs`.
func expectMatchesReference(
  _ op: any Primitive, _ inputs: [HostTensor], atol: Double = 1e-6, rtol: Double = 2e-6,
  sourceLocation: SourceLocation = #_sourceLocation
) throws {
  let outType = try op.outputType(inputs.map(\.type))
  let expected = try op.reference(inputs, output: outType)
  let actual = try runSwiftKernel(op, inputs)
  #expect(actual.type == expected.type, "\(op)", sourceLocation: sourceLocation)
  let what = "\(op) on \(inputs.map(\.type.description).joined(separator: ", "))"
  expectClose(actual, expected, atol: atol, rtol: rtol, what, sourceLocation: sourceLocation)
}

/// The bit patterns of an f32 tensor, for exact comparisons.
func bits(_ t: HostTensor) -> [UInt32] { t.floats.map(\.bitPattern) }

// MARK: - Elementwise

@Suite struct SwiftElementwiseKernelTests {
  /// Shape pairs: same shape, scalars either side, a bias over NHWC, general broadcasting, runs
  /// longer than one task, and tensors large enough to go parallel.
  static let shapePairs: [(Shape, Shape)] = [
    ([1], [1]), ([7], [7]), ([13, 5, 3], [13, 5, 3]), ([2, 4, 4, 3], [3]), ([2, 4, 4, 3], []),
    ([], [2, 3]), ([1], [13, 5, 3]), ([13, 1, 3], [5, 1]), ([2, 1, 4, 1], [1, 3, 1, 5]),
    ([3, 1], [2, 3, 4]), ([2, 3, 1, 1], [2, 1, 1, 1]), ([2, 20001], [20001]), ([40003], [40003]),
    ([3, 0, 2], [2]),
  ]

  @Test(arguments: [Binary.Function.add, .sub, .mul, .div])
  func binaryMatchesReference(_ f: Binary.Function) throws {
    for (k, (sa, sb)) in Self.shapePairs.enumerated() {
      let a = randomHost(TensorType(sa, .f32), seed: UInt64(10 + k))
      let b = randomHost(TensorType(sb, .f32), seed: UInt64(50 + k), in: 0.5..<2)
      try expectMatchesReference(Binary(f), [a, b])
      if a.shape.count < 1000 { try expectMatchesReference(Binary(f), [b, a]) }
    }
    let a = randomHost(TensorType([2, 4, 3], .f64), seed: 3)
    let b = randomHost(TensorType([4, 1], .f64), seed: 4, in: 0.5..<2)
    try expectMatchesReference(Binary(f), [a, b], atol: 1e-14, rtol: 1e-14)
    try expectMatchesReference(Binary(f), [b, a], atol: 1e-14, rtol: 1e-14)
  }

  @Test(arguments: [
    Unary.Function.neg, .exp, .log, .sqrt, .addScalar(0.3), .addScalar(-7), .mulScalar(-2.5), .mulScalar(1.0 / 3),
  ])
  func unaryMatchesReference(_ f: Unary.Function) throws {
    let positive = f == .log || f == .sqrt
    for (k, shape) in [[1], [7], [13, 5, 3], [2, 4, 4, 3], [40003], [0]].map(Shape.init).enumerated() {
      let x = randomHost(TensorType(shape, .f32), seed: UInt64(k), in: positive ? 0.01..<50 : -10..<10)
      try expectMatchesReference(Unary(f), [x])
    }
    let x = randomHost(TensorType([13, 5], .f64), seed: 9, in: positive ? 0.01..<50 : -10..<10)
    try expectMatchesReference(Unary(f), [x], atol: 1e-14, rtol: 1e-14)
  }

  @Test func expAndLogAreAccurateOverTheirRange() throws {
    // Wide ranges, including exp's overflow and underflow and log of tiny values.
    let x = randomHost(TensorType([4099], .f32), seed: 21, in: -100..<90)
    try expectMatchesReference(Unary(.exp), [x], atol: 1e-37, rtol: 2.5e-7)
    let y = randomHost(TensorType([4099], .f32), seed: 22, in: 1e-30..<1e30)
    try expectMatchesReference(Unary(.log), [y], atol: 0, rtol: 2.5e-7)
  }

  @Test func reluAndItsGradient() throws {
    for (k, shape) in [[1], [7], [13, 5, 3], [40003]].map(Shape.init).enumerated() {
      var values = randomHost(TensorType(shape, .f32), seed: UInt64(30 + k)).doubles
      values[0] = 0  // the boundary: relu'(0) is 0
      let x = HostTensor(type: TensorType(shape, .f32), doubles: values)
      try expectMatchesReference(ReLU(), [x], atol: 0, rtol: 0)
      let y = try ReLU().reference([x], output: x.type)
      let dy = randomHost(x.type, seed: UInt64(60 + k))
      try expectMatchesReference(ReLUBackward(), [dy, y], atol: 0, rtol: 0)
    }
    let nan = try HostTensor(shape: [3], floats: [.nan, -0.0, 2])
    #expect(try runSwiftKernel(ReLU(), [nan]).floats[0].isNaN)
    #expect(try runSwiftKernel(ReLU(), [nan]).floats[1...] == [0, 2])
  }

  @Test func otherDtypesAreRefusedNamingTheOp() throws {
    let h = HostTensor(type: TensorType([3], .f16), repeating: 1)
    #expect { try runSwiftKernel(Binary(.add), [h, h]) } throws: {
      "\($0)" == "add: f16[3], f16[3]: the CPU kernel computes in f32 or f64, not f16; cast the operands first"
    }
    let b = HostTensor(type: TensorType([2, 2], .bf16), repeating: 1)
    #expect { try runSwiftKernel(Unary(.exp), [b]) } throws: { "\($0)".hasPrefix("exp: bf16[2,2]:") }
    #expect { try runSwiftKernel(Sum(axes: [0], keepDims: false), [b]) } throws: { "\($0)".contains("not bf16") }
  }
}

// MARK: - Sums

@Suite struct SwiftSumKernelTests {
  @Test func everySubsetOfAxes() throws {
    let x = randomHost(TensorType([13, 5, 3], .f32), seed: 1)
    for mask in 0..<8 {
      let axes = (0..<3).filter { mask & (1 << $0) != 0 }
      try expectMatchesReference(Sum(axes: axes, keepDims: false), [x], atol: 1e-5, rtol: 1e-5)
      try expectMatchesReference(Sum(axes: axes, keepDims: true), [x], atol: 1e-5, rtol: 1e-5)
    }
    let d = randomHost(TensorType([2, 3, 4, 5], .f64), seed: 2)
    for axes in [[0, 2], [1, 3], [0, 1, 2, 3], [3]] {
      try expectMatchesReference(Sum(axes: axes, keepDims: false), [d], atol: 1e-13, rtol: 1e-13)
    }
  }

  @Test func oddAndLargeShapes() throws {
    let cases: [(Shape, [Int])] = [
      ([1], [0]), ([7], [0]), ([2, 4, 4, 3], [0, 1, 2]), ([2, 4, 4, 3], [1, 2]), ([2, 4, 4, 3], [3]),
      ([3, 1, 4], [1]), ([1, 1], [0, 1]), ([40000, 3], [0]), ([2, 40000], [1]), ([70001], [0]),
      ([2, 3, 2000, 2], [0, 2]), ([2, 40, 1030], [1]), ([0, 3], [0]), ([3, 0], [0]),
    ]
    for (k, (shape, axes)) in cases.enumerated() {
      let x = randomHost(TensorType(shape, .f32), seed: UInt64(20 + k))
      try expectMatchesReference(Sum(axes: axes, keepDims: false), [x], atol: 1e-4, rtol: 1e-5)
    }
  }

  @Test func bitsDoNotDependOnTheThreadCount() throws {
    let x = randomHost(TensorType([2, 30, 20, 64], .f32), seed: 5)
    let y = randomHost(TensorType([90001], .f32), seed: 6)
    let ops: [(Sum, HostTensor)] = [
      (Sum(axes: [0, 1, 2, 3], keepDims: false), x), (Sum(axes: [0, 1, 2], keepDims: false), x),
      (Sum(axes: [1, 2], keepDims: false), x), (Sum(axes: [0], keepDims: false), y),
    ]
    for (op, input) in ops {
      let one = try Parallel.$threadLimit.withValue(1) { try runSwiftKernel(op, [input]) }
      for threads in [2, 3, 7] {
        let many = try Parallel.$threadLimit.withValue(threads) { try runSwiftKernel(op, [input]) }
        #expect(bits(many) == bits(one), "\(op) with \(threads) threads")
      }
      try expectMatchesReference(op, [input], atol: 1e-4, rtol: 1e-5)
    }
  }
}

// MARK: - Copies

@Suite struct SwiftCopyKernelTests {
  @Test func broadcastToEveryDtype() throws {
    let cases: [(Shape, Shape)] = [([3, 1], [2, 3, 4]), ([1, 5], [4, 5]), ([2, 1, 3], [2, 2, 3]), ([1], [7]), ([], [2, 2])]
    for dtype in DType.allCases {
      for (k, (from, to)) in cases.enumerated() {
        let x = randomHost(TensorType(from, dtype), seed: UInt64(k), in: 0..<100)
        try expectMatchesReference(BroadcastTo(shape: to), [x], atol: 0, rtol: 0)
      }
    }
    let big = randomHost(TensorType([1, 3, 1], .f32), seed: 4)
    try expectMatchesReference(BroadcastTo(shape: [2, 3, 30000]), [big], atol: 0, rtol: 0)
  }

  @Test func reshapeCopies() throws {
    for dtype in [DType.f32, .u8, .f16, .f64] {
      let x = randomHost(TensorType([2, 3, 4], dtype), seed: 8, in: 0..<100)
      try expectMatchesReference(Reshape(shape: [4, 6]), [x], atol: 0, rtol: 0)
    }
    let big = randomHost(TensorType([300, 1000], .f32), seed: 9)
    try expectMatchesReference(Reshape(shape: [1000, 300]), [big], atol: 0, rtol: 0)
  }
}

// MARK: - Softmax

@Suite struct SwiftSoftmaxKernelTests {
  @Test(arguments: [false, true])
  func matchesReferenceStably(_ log: Bool) throws {
    for (k, shape) in [[1], [7], [2, 1], [13, 5, 3], [2, 4, 4, 3], [3, 300]].map(Shape.init).enumerated() {
      let x = randomHost(TensorType(shape, .f32), seed: UInt64(k), in: -8..<8)
      try expectMatchesReference(Softmax(log: log), [x], atol: 1e-6, rtol: 1e-5)
    }
    // Logits far beyond exp's range: the row maximum is subtracted first.
    let wide = randomHost(TensorType([5, 6], .f32), seed: 9, in: -1000..<1000)
    try expectMatchesReference(Softmax(log: log), [wide], atol: 1e-6, rtol: 1e-5)
    let d = randomHost(TensorType([4, 5], .f64), seed: 10, in: -30..<30)
    try expectMatchesReference(Softmax(log: log), [d], atol: 1e-13, rtol: 1e-13)
  }
}

// MARK: - Layout

@Suite struct SwiftLayoutKernelTests {
  @Test func concatAlongEveryAxis() throws {
    for dtype in [DType.f32, .u8, .f16, .f64] {
      for axis in 0..<3 {
        var shapes: [Shape] = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
        shapes[1].dims[axis] = 5
        shapes[2].dims[axis] = axis == 1 ? 0 : 1
        let xs = shapes.enumerated().map { randomHost(TensorType($1, dtype), seed: UInt64($0), in: 0..<100) }
        try expectMatchesReference(Concat(axis: axis), xs, atol: 0, rtol: 0)
      }
    }
    let big = (0..<2).map { randomHost(TensorType([2, 130, 130, 2], .f32), seed: UInt64($0)) }
    try expectMatchesReference(Concat(axis: 3), big, atol: 0, rtol: 0)
  }

  @Test func slicesOfEveryKind() throws {
    let cases: [(Shape, [Int], [Int])] = [
      ([5, 7, 3], [1, 2, 0], [3, 4, 3]), ([5, 7, 3], [0, 0, 1], [5, 7, 1]), ([5, 7, 3], [4, 6, 2], [1, 1, 1]),
      ([5, 7, 3], [2, 0, 0], [2, 7, 3]), ([7], [3], [4]), ([7], [2], [0]), ([3, 200, 100], [1, 10, 0], [2, 150, 100]),
    ]
    for dtype in [DType.f32, .i32, .bf16] {
      for (k, (shape, starts, sizes)) in cases.enumerated() {
        let x = randomHost(TensorType(shape, dtype), seed: UInt64(k), in: -50..<50)
        try expectMatchesReference(Slice(starts: starts, sizes: sizes), [x], atol: 0, rtol: 0)
      }
    }
  }

  static let padCases: [(Shape, [Int], [Int])] = [
    ([2, 5, 4, 3], [0, 2, 1, 0], [0, 1, 3, 0]), ([7], [3], [2]), ([1], [0], [0]), ([4, 4], [3, 3], [3, 3]),
    ([3, 4, 5], [1, 2, 0], [2, 1, 4]), ([1, 30, 40, 2], [0, 5, 7, 0], [0, 6, 8, 0]),
  ]

  @Test(arguments: [PadMode.zero, .reflect])
  func padMatchesReference(_ mode: PadMode) throws {
    for dtype in [DType.f32, .u8, .f64] {
      for (k, (shape, before, after)) in Self.padCases.enumerated() {
        let x = randomHost(TensorType(shape, dtype), seed: UInt64(k), in: 1..<100)
        try expectMatchesReference(Pad(before: before, after: after, mode: mode), [x], atol: 0, rtol: 0)
      }
    }
    let ones = HostTensor(type: TensorType([1], .f32), repeating: 1)
    try expectMatchesReference(Pad(before: [2], after: [3], mode: .zero), [ones], atol: 0, rtol: 0)
    let empty = HostTensor(type: TensorType([2, 0], .f32), repeating: 1)
    try expectMatchesReference(Pad(before: [1, 2], after: [0, 1], mode: .zero), [empty], atol: 0, rtol: 0)
  }

  @Test func padBackwardMatchesReference() throws {
    for dtype in [DType.f32, .f64] {
      for (k, (shape, before, after)) in Self.padCases.enumerated() {
        let padded = Shape((0..<shape.rank).map { before[$0] + shape.dims[$0] + after[$0] })
        let g = randomHost(TensorType(padded, dtype), seed: UInt64(k))
        try expectMatchesReference(PadBackward(before: before, after: after), [g], atol: 1e-6, rtol: 1e-6)
      }
    }
  }
}

// MARK: - Random, type and label ops

@Suite struct SwiftConversionKernelTests {
  @Test func maskBitsAreTheReferenceHash() {
    var rng = SeededRandom(seed: 3)
    for _ in 0..<1000 {
      let seed = rng.next(), counter = rng.next()
      #expect(maskBits(seed: seed, counter: counter) == RandomMask.bits(seed: seed, counter: counter))
    }
  }

  @Test func randomMaskIsTheReferenceBitForBit() throws {
    for dtype in [DType.f32, .f64, .f16, .bf16] {
      for (shape, keep, seed, offset) in [
        (Shape([7]), 0.5, UInt64(1), UInt64(0)), ([13, 5, 3], 0.9, 42, 1000), ([40003], 0.3, .max, 17),
        ([2, 3], 1.0, 5, .max - 2), ([1], 0.7, 0, 0),
      ] {
        let op = RandomMask(shape: shape, keepProbability: keep, seed: seed, offset: offset, dtype: dtype)
        try expectMatchesReference(op, [], atol: 0, rtol: 0)
      }
    }
    // The boundary: element 0's bits equal keepProbability * 2^24 exactly, so it is dropped.
    let u = RandomMask.bits(seed: 11, counter: 0)
    let edge = RandomMask(shape: [3], keepProbability: Double(u) / 16_777_216, seed: 11, offset: 0, dtype: .f32)
    #expect(try runSwiftKernel(edge, []).floats[0] == 0)
    try expectMatchesReference(edge, [], atol: 0, rtol: 0)
  }

  @Test func castBetweenEveryPairOfDtypes() throws {
    let values: [Double] = [
      0, -0.0, 0.5, -0.5, 1.5, -1.7, 2.5, 255, 255.9, 256, 300.25, -1, -129.5, 65504, 65519.9, 70000, 1e10, -1e10,
      16_777_217, 3.1415926535897931, 1e-8, -2_147_483_649, .nan, .infinity, -.infinity,
    ]
    for from in DType.allCases {
      let x = HostTensor(type: TensorType([values.count], from), doubles: values)
      for to in DType.allCases {
        try expectMatchesReference(Cast(dtype: to), [x], atol: 0, rtol: 0)
      }
    }
    let big = randomHost(TensorType([40001], .f32), seed: 4, in: -300..<300)
    for to in DType.allCases { try expectMatchesReference(Cast(dtype: to), [big], atol: 0, rtol: 0) }
  }

  @Test func argmaxFirstMaximumAndFirstNaN() throws {
    for dtype in [DType.f32, .u8, .i32, .f16] {
      for axis in 0..<3 {
        // Few distinct values, so ties are common.
        let x = HostTensor(
          type: TensorType([4, 5, 3], dtype),
          doubles: randomHost(TensorType([60], .f64), seed: UInt64(axis), in: 0..<3).doubles.map { $0.rounded(.down) })
        try expectMatchesReference(ArgMax(axis: axis), [x], atol: 0, rtol: 0)
      }
    }
    var v = randomHost(TensorType([6, 4], .f64), seed: 5).doubles
    (v[1], v[3], v[6], v[13], v[14]) = (.nan, .nan, .nan, .nan, .infinity)
    for axis in 0..<2 {
      try expectMatchesReference(ArgMax(axis: axis), [HostTensor(type: TensorType([6, 4], .f32), doubles: v)], atol: 0, rtol: 0)
    }
  }

  @Test func oneHotAndBadLabels() throws {
    for labelType in [DType.i32, .u8] {
      let labels = HostTensor(
        type: TensorType([2, 3, 5], labelType),
        doubles: randomHost(TensorType([30], .f64), seed: 7, in: 0..<4).doubles.map { $0.rounded(.down) })
      for dtype in [DType.f32, .u8, .bf16, .f64] {
        try expectMatchesReference(OneHot(classes: 4, dtype: dtype), [labels], atol: 0, rtol: 0)
      }
      let bad = HostTensor(type: TensorType([2, 3], labelType), doubles: [0, 1, 3, 2, 9, 4])
      let op = OneHot(classes: 3, dtype: .f32)
      var expected = ""
      do { _ = try op.reference([bad], output: op.outputType([bad.type])) } catch { expected = "\(error)" }
      #expect(expected.contains("label 3 at index 2"))
      #expect { try runSwiftKernel(op, [bad]) } throws: { "\($0)" == expected }
    }
    let negative = HostTensor(type: TensorType([2], .i32), doubles: [1, -1])
    #expect { try runSwiftKernel(OneHot(classes: 2, dtype: .f32), [negative]) } throws: {
      "\($0)" == "oneHot: i32[2]: label -1 at index 1 is outside 0..<2"
    }
  }
}

// MARK: - Coverage

@Suite struct SwiftKernelCoverageTests {
  /// Every primitive type without a oneDNN kernel has a Swift kernel, and so do ReLU and
  /// ReLUBackward (for the dtypes oneDNN declines); it is always the last candidate. The skip
  /// gradient, which joins max pooling's backward (oneDNN's alone), runs as the ops it joins.
  @Test func everyNonConvolutionTypeHasASwiftKernel() {
    let oneDNNOnly: [any Primitive.Type] = [
      Conv2D.self, Conv2DBackwardData.self, Conv2DBackwardFilter.self, MaxPool2D.self, MaxPool2DBackward.self,
      SkipGradient.self,
    ]
    for type in Primitives.all where !oneDNNOnly.contains(where: { $0 == type }) {
      #expect(CPUBackend.shared.kernels.candidates(for: type).last == "swift", "no Swift kernel for \(type)")
    }
  }
}
