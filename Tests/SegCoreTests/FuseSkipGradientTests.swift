import SegCore
import Testing

// MARK: - Fixtures

/// Values of `shape` from `seed`, in -1..<1, as `dtype` (a leaf of no graph).
private func values(_ shape: Shape, seed: UInt64, _ dtype: DType = .f32) throws -> Tensor {
  var rng = SplitMix64(seed: seed)
  return try Tensor(cast(Tensor(shape: shape, floats: (0..<shape.count).map { _ in rng.nextUnitFloat() * 2 - 1 }), to: dtype).host())
}

private func bits(_ ts: [Tensor]) throws -> [[UInt64]] { try ts.map { try $0.host().doubles.map(\.bitPattern) } }

private func ops<P: Primitive>(_ type: P.Type, in program: Program) -> [P] { program.instructions.compactMap { $0.op as? P } }

/// ReLU backward ops of `program`, alone or as a step of a fused elementwise op.
private func reluBackwards(in program: Program) -> Int {
  ops(ReLUBackward.self, in: program).count
    + ops(FusedElementwise.self, in: program).flatMap(\.steps).filter { $0.op.primitive is ReLUBackward }.count
}

/// One level of a U-Net as the GPU builds it: the encoder's ReLU output x [1,8,7,4] is pooled and
/// also joined, as the skip, to the upsampled path by one `cropConcat`; inputs (image, scale,
/// deep weights, the loss's weights); the gradients of the scale and the deep weights.
private func level(_ xs: [Tensor]) throws -> [Tensor] {
  let (_, grads) = try valueAndGradients(at: [xs[1], xs[2]]) { p in
    let x = try relu(xs[0] * p[0])  // [1,8,7,4]
    let deep = try relu(maxPool2d(x) * p[1])  // [1,4,3,4]
    return try sum(cropConcat(deep, x) * xs[3])  // [1,4,3,8]
  }
  return grads
}

/// The same level as the CPU builds it: a centre crop, then a concat.
private func croppedLevel(_ xs: [Tensor]) throws -> [Tensor] {
  let (_, grads) = try valueAndGradients(at: [xs[1], xs[2]]) { p in
    let x = try relu(xs[0] * p[0])
    let deep = try relu(maxPool2d(x) * p[1])
    return try sum(concat([deep, centerCrop(x, height: 4, width: 3)]) * xs[3])
  }
  return grads
}

private func levelInputs(_ dtype: DType, seed: UInt64) throws -> [Tensor] {
  try [[1, 8, 7, 4], [4], [1, 4, 3, 4], [1, 4, 3, 8]].enumerated().map { k, s in try values(s, seed: seed &+ UInt64(k), dtype) }
}

@Suite struct FuseSkipGradientTests {
  /// The pool's backward, the skip's share of the concat's gradient, their sum and ReLU's
  /// backward become one skipGradient; the concat's gradient stays as the slice the upsampled
  /// path needs; the compiled step gives the eager one's bits in f32 and f16.
  @Test(arguments: [DType.f32, .f16]) func encoderGradientBecomesOneOp(dtype: DType) throws {
    let compiled = CompiledFunction("skip-\(dtype)") { xs, _ in try level(xs) }
    for seed in [1, 7] as [UInt64] {
      let xs = try levelInputs(dtype, seed: seed)
      #expect(try bits(compiled(xs)) == bits(level(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    let fused = ops(SkipGradient.self, in: program)
    #expect(fused.count == 1 && fused[0].reluBackward && fused[0].channels == 4, "\(program)")
    #expect(ops(MaxPool2DBackward.self, in: program).isEmpty && ops(CropConcatBackward.self, in: program).isEmpty, "\(program)")
    #expect(reluBackwards(in: program) == 1, "only the deep level's ReLU backward is left: \(program)")
    #expect(ops(Slice.self, in: program).count == 1, "\(program)")
    try #require(program.memoryPlan).validate()
  }

  /// Where the skip is a centre crop and a concat, its share of the gradient is a zero pad of a
  /// channel slice: joined the same way, the slice and the pad dropped.
  @Test func aPaddedSliceIsTheSkipsShareToo() throws {
    let compiled = CompiledFunction("cropped") { xs, _ in try croppedLevel(xs) }
    for seed in [2, 5] as [UInt64] {
      let xs = try levelInputs(.f32, seed: seed)
      #expect(try bits(compiled(xs)) == bits(croppedLevel(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    let fused = ops(SkipGradient.self, in: program)
    #expect(fused.count == 1 && fused[0].reluBackward && fused[0].channels == 4, "\(program)")
    #expect(ops(MaxPool2DBackward.self, in: program).isEmpty && ops(Pad.self, in: program).isEmpty, "\(program)")
    // The upsampled path's gradient (the forward crop and concat are dead: only gradients leave).
    #expect(ops(Slice.self, in: program).count == 1, "\(program)")
  }

  /// A pad that does not put the slice back at the centre, or a slice of part of the image, is
  /// not the skip's share.
  @Test func otherPadsAndSlicesAreNotJoined() throws {
    let xs = try [[1, 6, 6, 2], [1, 3, 3, 2], [1, 4, 4, 5]].enumerated().map { k, s in try values(s, seed: 60 + UInt64(k)) }
    for (name, f) in [
      ("off-centre", { (xs: [Tensor]) throws -> [Tensor] in
        let s = try slice(xs[2], starts: [0, 0, 0, 3], sizes: [1, 4, 4, 2])
        return [try maxPool2dBackward(xs[0], xs[1]) + pad(s, before: [0, 2, 2, 0], after: [0, 0, 0, 0])]
      }),
      ("part of the image", { (xs: [Tensor]) throws -> [Tensor] in
        let s = try slice(xs[2], starts: [0, 0, 0, 3], sizes: [1, 2, 2, 2])
        return [try maxPool2dBackward(xs[0], xs[1]) + pad(s, before: [0, 2, 2, 0], after: [0, 2, 2, 0])]
      }),
    ] as [(String, ([Tensor]) throws -> [Tensor])] {
      let compiled = CompiledFunction(name) { xs, _ in try f(xs) }
      #expect(try bits(compiled(xs)) == bits(f(xs)), "\(name)")
      #expect(ops(SkipGradient.self, in: try #require(compiled.allPrograms.first)).isEmpty, "\(name)")
    }
  }

  /// Written out by hand: a sum read twice, a pool gradient handed back, or a ReLU backward against
  /// another value keep their ops; the upsampled gradient nobody reads is not made.
  @Test func onlyWhatNobodyElseReadsIsJoined() throws {
    let pool = MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2)
    let xs = try [[1, 6, 6, 2], [1, 3, 3, 2], [1, 4, 4, 5]].enumerated().map { k, s in try values(s, seed: 40 + UInt64(k)) }
    func parts(_ xs: [Tensor]) throws -> (pooled: Tensor, skip: Tensor) {
      (try maxPool2dBackward(xs[0], xs[1]), try cropConcatBackward(xs[2], channels: 3, skipHeight: 6, skipWidth: 6).skip)
    }
    func program(_ name: String, _ f: @escaping ([Tensor]) throws -> [Tensor]) throws -> Program {
      let compiled = CompiledFunction(name) { xs, _ in try f(xs) }
      #expect(try bits(compiled(xs)) == bits(f(xs)), "\(name)")
      return try #require(compiled.allPrograms.first)
    }

    // The sum alone; ReLU's backward against another value is not joined.
    let plain = try program("sum") { xs in
      let (p, s) = try parts(xs)
      return [try reluBackward(p + s, xs[0] * 2)]
    }
    let joined = ops(SkipGradient.self, in: plain)
    #expect(joined.count == 1 && !joined[0].reluBackward && joined[0].pool == pool, "\(plain)")
    #expect(ops(CropConcatBackward.self, in: plain).isEmpty && ops(Slice.self, in: plain).isEmpty, "nothing reads the upsampled part: \(plain)")
    #expect(reluBackwards(in: plain) == 1)

    // The pool's gradient is handed back, the sum read twice: nothing is joined.
    let shared = try program("shared") { xs in
      let (p, s) = try parts(xs)
      return [try p + s, p]
    }
    #expect(ops(SkipGradient.self, in: shared).isEmpty, "\(shared)")
    let twice = try program("twice") { xs in
      let (p, s) = try parts(xs)
      let total = try p + s
      return [try reluBackward(total, xs[0]) * total]
    }
    #expect(ops(SkipGradient.self, in: twice).count == 1 && reluBackwards(in: twice) == 1, "\(twice)")
  }

  /// The op's shape rule names what does not fit, and it has no gradient of its own.
  @Test func shapeRuleAndNoGradient() throws {
    let pool = MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2)
    let x = try values([1, 6, 6, 2], seed: 1), dy = try values([1, 3, 3, 2], seed: 2)
    #expect(throws: TensorError.self) { try skipGradient(x, dy, values([1, 4, 4, 4], seed: 3), pool: pool, channels: 3, reluBackward: false) }
    #expect(throws: TensorError.self) { try skipGradient(x, dy, values([1, 7, 4, 5], seed: 3), pool: pool, channels: 3, reluBackward: false) }
    #expect(throws: TensorError.self) { try skipGradient(x, values([1, 2, 3, 2], seed: 2), values([1, 4, 4, 5], seed: 3), pool: pool, channels: 3, reluBackward: false) }
    let g = try values([1, 4, 4, 5], seed: 3)
    let y = try skipGradient(x, dy, g, pool: pool, channels: 3, reluBackward: true)
    let separate = try reluBackward(maxPool2dBackward(x, dy) + cropConcatBackward(g, channels: 3, skipHeight: 6, skipWidth: 6).skip, x)
    #expect(try y.host().doubles == separate.host().doubles)
    #expect(throws: TensorError.self) {
      _ = try valueAndGradients(at: [x]) { xs in try sum(skipGradient(xs[0], dy, g, pool: pool, channels: 3, reluBackward: false)) }
    }
  }
}
