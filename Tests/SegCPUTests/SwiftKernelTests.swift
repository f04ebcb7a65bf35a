import SegTestSupport
import Testing

// Testable: Sum, BroadcastTo and Reshape have no public initialisers.
@testable import SegCore
@testable import SegCPU

// MARK: - Running a Swift kernel on host tensors

/// Runs `SwiftKernels.table[op.kind]` on copies of `inputs` in fresh buffers and returns its output.
func runSwiftKernel(_ op: any Primitive, _ inputs: [HostTensor]) throws -> HostTensor {
  let outType = try op.outputType(inputs.map(\.type))
  let kernel = try #require(SwiftKernels.table[op.kind], "no Swift kernel for \(op.kind)")
  let buffers = inputs.map { hostBytes($0) }
  defer { buffers.forEach { $0.deallocate() } }
  let operands = zip(inputs, buffers).map { PlainOperand(type: $0.type, pointer: UnsafeRawPointer($1)) }
  let bytes = outType.shape.count * outType.dtype.byteSize
  let out = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
  defer { out.deallocate() }
  try kernel(op, operands, PlainOutput(type: outType, pointer: out))
  return try hostTensor(outType, from: UnsafeRawPointer(out))
}

/// A fresh buffer holding the tensor's elements in its own dtype.
func hostBytes(_ t: HostTensor) -> UnsafeMutableRawPointer {
  let bytes = t.shape.count * t.dtype.byteSize
  let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
  func put<E>(_ a: [E]) { a.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes) } }
  guard bytes > 0 else { return p }
  switch t.data {
  case .f64(let a): put(a)
  case .f32(let a): put(a)
  case .f16(let a): put(a)
  case .bf16(let a): put(a)
  case .i32(let a): put(a)
  case .u8(let a): put(a)
  }
  return p
}

/// A host tensor of `type` read from row-major memory.
func hostTensor(_ type: TensorType, from p: UnsafeRawPointer) throws -> HostTensor {
  let n = type.shape.count
  func get<E>(_: E.Type) -> [E] { Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: E.self), count: n)) }
  let data: HostData
  switch type.dtype {
  case .f64: data = .f64(get(Double.self))
  case .f32: data = .f32(get(Float.self))
  case .f16: data = .f16(get(Float16.self))
  case .bf16: data = .bf16(get(UInt16.self))
  case .i32: data = .i32(get(Int32.self))
  case .u8: data = .u8(get(UInt8.self))
  }
  return try HostTensor(shape: type.shape, data: data)
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
      try expectMatchesReference(Binary(f), [b, a])
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
      ([2, 3, 2000, 2], [0, 2]), ([3, 700, 1030], [1]), ([0, 3], [0]), ([3, 0], [0]),
    ]
    for (k, (shape, axes)) in cases.enumerated() {
      let x = randomHost(TensorType(shape, .f32), seed: UInt64(20 + k))
      try expectMatchesReference(Sum(axes: axes, keepDims: false), [x], atol: 1e-4, rtol: 1e-5)
    }
  }

  @Test func bitsDoNotDependOnTheThreadCount() throws {
    let x = randomHost(TensorType([3, 50, 40, 64], .f32), seed: 5)
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
