import Foundation
import SegCore
import Testing

// MARK: - Cheap values made again for the backward pass

@Suite struct RecomputeTests {
  /// A small U-Net-like encoder step: a first convolution of one channel (cheap), a wide one, a
  /// max-pool and a convolution of the pooled values, then the loss; the value and the gradients
  /// of the three filters.
  static func step(_ xs: [Tensor]) throws -> [Tensor] {
    let (value, grads) = try valueAndGradients(at: Array(xs[1...])) { w in
      let a = try conv2d(xs[0], w[0], padding: .same, activation: .relu)
      let b = try conv2d(a, w[1], padding: .same, activation: .relu)
      let c = try conv2d(maxPool2d(b), w[2], padding: .same, activation: .relu)
      return try sum(c * c)
    }
    return [value] + grads
  }

  static func inputs(_ seed: UInt64) throws -> [Tensor] {
    var rng = SplitMix64(seed: seed)
    let values = { (n: Int) in (0..<n).map { _ in rng.nextUnitFloat() - 0.5 } }
    return [
      try Tensor(shape: [1, 8, 8, 1], floats: values(64)), try Tensor(shape: [3, 3, 1, 4], floats: values(36)),
      try Tensor(shape: [3, 3, 4, 4], floats: values(144)), try Tensor(shape: [3, 3, 4, 4], floats: values(144)),
    ]
  }

  static func bits(_ ts: [Tensor]) throws -> [[UInt64]] { try ts.map { try $0.host().doubles.map(\.bitPattern) } }

  @Test func thePoolAndTheFirstConvolutionAreMadeAgainWithTheEagerBits() throws {
    let compiled = CompiledFunction("recompute") { xs, _ in try Self.step(xs) }
    let kept = CompiledFunction("keep", passes: CompilerPasses.standard.filter { !($0 is RecomputeCheapValues) }) { xs, _ in try Self.step(xs) }
    for seed in 0..<3 as Range<UInt64> {
      let xs = try Self.inputs(seed)
      let eager = try Self.bits(Self.step(xs))
      #expect(try Self.bits(compiled(xs)) == eager)
      #expect(try Self.bits(kept(xs)) == eager)
    }
    let program = try #require(compiled.allPrograms.first), plain = try #require(kept.allPrograms.first)
    let count = { (p: Program, kind: OpKind) in p.instructions.filter { $0.op.kind == kind }.count }
    // The pool, and the first convolution (9 products an element, from the image and its filter),
    // run twice; the wide convolution (36 products) once.
    #expect(count(program, .maxPool2d) == 2 && count(plain, .maxPool2d) == 1)
    let firstFilter = program.inputs[1]
    #expect(program.instructions.filter { $0.op.kind == .conv2d && $0.inputs[1] == firstFilter }.count == 2)
    #expect(count(program, .conv2d) == count(plain, .conv2d) + 1)
    let plan = try #require(program.memoryPlan), plainPlan = try #require(plain.memoryPlan)
    try plan.validate()
    #expect(plan.peakLiveBytes < plainPlan.peakLiveBytes, "\(plan.summary) vs \(plainPlan.summary)")
  }

  @Test func aFunctionWithoutABackwardPassIsUnchanged() throws {
    let forward = { (xs: [Tensor]) throws -> [Tensor] in
      [try conv2d(maxPool2d(conv2d(xs[0], xs[1], padding: .same, activation: .relu)), xs[2], padding: .same)]
    }
    let compiled = CompiledFunction("forward") { xs, _ in try forward(xs) }
    let xs = Array(try Self.inputs(5).prefix(3))
    #expect(try Self.bits(compiled(xs)) == Self.bits(forward(xs)))
    let program = try #require(compiled.allPrograms.first)
    #expect(program.instructions.map(\.op.kind) == [.conv2d, .maxPool2d, .conv2d])
  }
}
