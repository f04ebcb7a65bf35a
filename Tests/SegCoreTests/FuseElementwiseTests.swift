import Foundation
import SegCore
import Testing

// MARK: - Random elementwise graphs

/// The shapes a random elementwise graph's inputs take: the full [2,5,4,8], a per-channel [8], a
/// single value, and a row broadcast over the batch and height [1,1,4,8].
private let inputShapes: [Shape] = [[2, 5, 4, 8], [2, 5, 4, 8], [8], [1], [1, 1, 4, 8]]

/// A random DAG of elementwise ops over `inputShapes` (unary, binary with broadcasting, relu, its
/// backward, casts through f64), built by `seed`, ending in a sum and the value of its last op.
private func randomElementwise(seed: UInt64) -> ([Tensor]) throws -> [Tensor] {
  { xs in
    var rng = SplitMix64(seed: seed)
    var pool = [xs[0], xs[1]]
    func pick() -> Tensor { pool[Int(rng.next() % UInt64(pool.count))] }
    func small() -> Tensor { xs[2 + Int(rng.next() % 3)] }
    for _ in 0..<10 {
      let a = pick()
      let made: Tensor
      switch rng.next() % 10 {
      case 0: made = try a + small()
      case 1: made = try a * pick()
      case 2: made = try relu(a - small())
      case 3: made = try exp(a * 0.25)
      case 4: made = try a * 1.5 + 0.5
      case 5: made = try reluBackward(a, pick())
      case 6: made = try small() / (a * a + 1)
      case 7: made = try sqrt(a * a + 0.1) - pick()
      case 8: made = try cast(cast(a, to: .f64) * 0.5, to: a.dtype)
      default: made = try log(exp(a) + 1)
      }
      pool.append(made)
    }
    // Several values leave the graph: fusion must keep what is handed back.
    return [try sum(pool[pool.count - 1] * pool[3]), pool[pool.count - 1], pool[5]]
  }
}

private func inputs(_ seed: UInt64) throws -> [Tensor] {
  var rng = SplitMix64(seed: seed)
  return try inputShapes.map { s in try Tensor(shape: s, floats: (0..<s.count).map { _ in rng.nextUnitFloat() * 2 - 1 }) }
}

private func bits(_ ts: [Tensor]) throws -> [[UInt64]] { try ts.map { try $0.host().doubles.map(\.bitPattern) } }

private func fusedOps(_ program: Program) -> [FusedElementwise] { program.instructions.compactMap { $0.op as? FusedElementwise } }

@Suite struct FuseElementwiseTests {
  /// Forward and backward of random elementwise DAGs: the compiled program, fused, gives the eager
  /// bits (the fused op's reference runs the same reference kernels in the same order).
  @Test(arguments: 0..<16 as Range<UInt64>) func fusedRandomGraphsEqualEager(seed: UInt64) throws {
    let f = randomElementwise(seed: seed)
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let outs = try f(xs)
      let (_, grads) = try valueAndGradients(at: xs) { try f($0)[0] }
      return outs + grads
    }
    let compiled = CompiledFunction("fuse\(seed)") { xs, _ in try step(xs) }
    for k in 0..<3 as Range<UInt64> {
      let xs = try inputs(seed &+ 100 * k)
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    #expect(!fusedOps(program).isEmpty, "\(program)")
    try #require(program.memoryPlan).validate()
    // Without the pass the same step has more instructions.
    let unfused = CompiledFunction("unfused\(seed)", passes: [RemoveDeadValues(), PlanMemory()]) { xs, _ in try step(xs) }
    _ = try unfused(try inputs(seed))
    let plain = try #require(unfused.allPrograms.first)
    #expect(program.instructions.count < plain.instructions.count)
  }

  /// A value read by two ops, a value handed back and an op bound to a step scalar stay where
  /// they are; a chain behind them fuses.
  @Test func whatIsSharedOrBoundIsNotFusedInto() throws {
    let compiled = CompiledFunction("rules") { xs, s in
      guard case .real(let c)? = s["scale"] else { throw TensorError(op: "test", "scale") }
      let shared = try relu(xs[0] + xs[1])  // read twice below
      let a = try exp(shared) * 2
      let b = try shared - 1
      let scaled = try markingStepScalar("scale", .mulScalar) { try a * c }
      return [try scaled + b, b]
    }
    let xs = [try Tensor(shape: [3, 4], floats: (0..<12).map { Float($0) * 0.1 }), try Tensor(shape: [4], floats: [1, -1, 2, -2])]
    _ = try compiled(xs, scalars: ["scale": .real(3)])
    let program = try #require(compiled.allPrograms.first)
    let fused = fusedOps(program)
    // relu(add) fuses; exp*2 fuses; `b` is handed back and stays its own op; the bound scale alone.
    #expect(fused.map { $0.steps.count }.sorted() == [2, 2], "\(program)")
    let out = try compiled(xs, scalars: ["scale": .real(5)])
    let shared = try relu(xs[0] + xs[1])
    #expect(try out[0].host().doubles == (try exp(shared) * 2 * 5 + (shared - 1)).host().doubles)
    #expect(program.description.contains("t1 = relu(t0)"), "the dump shows the fused expression")
  }

  /// The fused op's gradient is its steps' gradients chained, and its shape rule refuses a step
  /// that reads what it cannot see.
  @Test func gradientAndShapeRule() throws {
    let x = try Tensor(shape: [2, 3], floats: [0.5, -1, 2, -0.25, 1.5, -3]), b = try Tensor(shape: [3], floats: [0.1, 0.2, -0.3])
    let ops: [(FusedElementwise.Elementwise, [FusedElementwise.Source])] = [
      (.binary(Binary(.mul)), [.input(0), .input(0)]), (.binary(Binary(.add)), [.step(0), .input(1)]),
      (.relu(ReLU()), [.step(1)]), (.binary(Binary(.mul)), [.step(2), .input(0)]),
    ]
    let (fv, fg) = try valueAndGradients(at: [x, b]) { try sum(fusedElementwise($0, ops)) }
    let (ev, eg) = try valueAndGradients(at: [x, b]) { xs in try sum(relu(xs[0] * xs[0] + xs[1]) * xs[0]) }
    #expect(try fv.host().doubles == ev.host().doubles)
    #expect(try bits(fg) == bits(eg))
    #expect(throws: TensorError.self) { try FusedElementwise(inputs: [x.type], [(.relu(ReLU()), [.step(0)])]) }
    #expect(throws: TensorError.self) { try fusedElementwise([x], [(.binary(Binary(.add)), [.input(0), .input(1)])]) }
  }
}
