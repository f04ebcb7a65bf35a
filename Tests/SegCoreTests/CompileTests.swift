import Foundation
import SegCore
import Testing

// MARK: - Random graphs

/// A random differentiable function of three tensors [2,4,4,3] from elementwise ops, reductions,
/// a convolution, pooling and concat, built by `seed`: the same seed builds the same function.
private func randomFunction(seed: UInt64) -> ([Tensor]) throws -> Tensor {
  { xs in
    var rng = SplitMix64(seed: seed)
    var pool = xs
    for _ in 0..<8 {
      let a = pool[Int(rng.next() % UInt64(pool.count))], b = pool[Int(rng.next() % UInt64(pool.count))]
      let made: Tensor
      switch rng.next() % 8 {
      case 0: made = try a + b
      case 1: made = try a * b
      case 2: made = try relu(a - b)
      case 3: made = try exp(a * 0.25)
      case 4: made = try a * 1.5 + 0.5
      case 5:
        let w = try Tensor(shape: [3, 3, 3, 3], floats: (0..<81).map { Float($0 % 7) * 0.05 - 0.15 }, on: a.backend)
        made = try conv2d(a, w, padding: .same)
      case 6: made = try concat([a, b], axis: -1) * concat([b, a], axis: -1) |> { try sum($0, axes: [-1], keepDims: true) * a }
      default: made = try sum(maxPool2d(a), axes: [1, 2], keepDims: true) * b
      }
      pool.append(made)
    }
    var total = try sum(pool[3] * pool[3])
    for t in pool.suffix(4) { total = try total + sum(t) }
    return total
  }
}

infix operator |>: AdditionPrecedence
private func |> (x: Tensor, f: (Tensor) throws -> Tensor) rethrows -> Tensor { try f(x) }

private func randomInputs(_ seed: UInt64) throws -> [Tensor] {
  var rng = SplitMix64(seed: seed)
  return try (0..<3).map { _ in try Tensor(shape: [2, 4, 4, 3], floats: (0..<96).map { _ in rng.nextUnitFloat() * 2 - 1 }) }
}

private func bits(_ ts: [Tensor]) throws -> [[UInt64]] { try ts.map { try $0.host().doubles.map(\.bitPattern) } }

@Suite struct CompileTests {
  @Test(arguments: 0..<12 as Range<UInt64>) func compiledEqualsEagerOnRandomGraphs(seed: UInt64) throws {
    let f = randomFunction(seed: seed)
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let (value, grads) = try valueAndGradients(at: xs, of: f)
      return [value] + grads
    }
    let compiled = CompiledFunction("random\(seed)") { xs, _ in try step(xs) }
    let first = try randomInputs(seed)
    #expect(try bits(compiled(first)) == bits(step(first)))
    // Replays on new values: no trace, the eager step's bits.
    for k in 1...2 as ClosedRange<UInt64> {
      let xs = try randomInputs(seed &+ 100 * k)
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    #expect(compiled.traceCount == 1)
    let program = try #require(compiled.allPrograms.first)
    let plan = try #require(program.memoryPlan)
    try plan.validate()
    #expect(plan.arenaBytes >= plan.peakLiveBytes && plan.arenaBytes <= plan.totalBytes)
  }

  @Test func stepScalarsAreBoundNotBaked() throws {
    let x = try Tensor(shape: [64], floats: (0..<64).map { Float($0) })
    // The ops are marked with their step scalars where they are made, as the model and Adam do.
    let eager: (Tensor, UInt64, Double) throws -> Tensor = { x, seed, c in
      let kept = try markingStepScalar("seed", .randomMaskSeed) { try dropout(x, rate: 0.5, seed: seed) }
      return try markingStepScalar("c", .mulScalar) { try kept * c }
    }
    let compiled = CompiledFunction("dropout") { xs, s in
      guard case .bits(let seed)? = s["seed"], case .real(let c)? = s["c"] else { throw TensorError(op: "test", "scalars") }
      return [try eager(xs[0], seed, c)]
    }
    for (seed, c) in [(UInt64(11), 3.0), (12, 5.0), (987_654_321, 0.75)] {
      let out = try compiled([x], scalars: ["seed": .bits(seed), "c": .real(c)])
      #expect(try bits(out) == bits([eager(x, seed, c)]))
    }
    #expect(compiled.traceCount == 1)
    let program = try #require(compiled.allPrograms.first)
    #expect(program.instructions.map { $0.bindings.map(\.scalar) }.flatMap { $0 }.sorted() == ["c", "seed"])
    // A scalar the program needs but the call leaves out is an error that names it.
    #expect { try compiled([x], scalars: ["seed": .bits(1)]) } throws: { "\($0)".contains("\"c\"") }
  }

  @Test func aMarkedScalarAndAConstantOfTheSameValueStayApart() throws {
    // A learning rate of 0.5 and a constant 0.5 in one program: only the marked product follows
    // the schedule (finding scalars by their traced value could not tell the two apart).
    let x = try Tensor(shape: [8], floats: (0..<8).map { Float($0) - 3 })
    let eager: (Tensor, Double) throws -> [Tensor] = { x, rate in
      let step = try markingStepScalar("rate", .mulScalar) { try x * rate }
      return [try step * 0.5 + x * 0.5]
    }
    let compiled = CompiledFunction("schedule") { xs, s in
      guard case .real(let rate)? = s["rate"] else { throw TensorError(op: "test", "rate") }
      return try eager(xs[0], rate)
    }
    for rate in [0.5, 0.25, 0.125, 0.5, 3.0] {
      #expect(try bits(compiled([x], scalars: ["rate": .real(rate)])) == bits(eager(x, rate)))
    }
    #expect(compiled.traceCount == 1)
    let program = try #require(compiled.allPrograms.first)
    #expect(program.instructions.filter { !$0.bindings.isEmpty }.count == 1)
  }

  @Test func aMarkOnTheWrongValueIsRefusedWhenTraced() throws {
    // Marked with "rate" but made from another number: replaying it would be wrong, so the trace fails.
    let compiled = CompiledFunction("wrong") { xs, _ in [try markingStepScalar("rate", .mulScalar) { try xs[0] * 2 }] }
    let x = try Tensor(shape: [2], floats: [1, 2])
    #expect { try compiled([x], scalars: ["rate": .real(3)]) } throws: { "\($0)".contains("\"rate\"") && "\($0)".contains("holds") }
    #expect { try compiled([x]) } throws: { "\($0)".contains("was not given") }
  }

  @Test func otherShapesTraceAgainOrFailWhenStrict() throws {
    let body: CompiledFunction.Body = { xs, _ in [try relu(xs[0]) * 2] }
    let loose = CompiledFunction("loose", body), strict = CompiledFunction("strict", strict: true, body)
    let a = try Tensor(shape: [4], floats: [1, -2, 3, -4]), b = try Tensor(shape: [2], floats: [-1, 5])
    for f in [loose, strict] { _ = try f([a]) }
    #expect(try loose([b]).first?.floats() == [0, 10])
    #expect(loose.traceCount == 2)
    #expect { try strict([b]) } throws: { "\($0)".contains("strict") }
  }

  @Test func deadValuesAreRemovedAndValuesFreedAtLastUse() throws {
    // Without fusion, which would join the two ops that remain.
    let passes: [any CompilerPass] = [CheckStepScalars(), RemoveDeadValues(), PlanMemory(), ValidateMemoryPlan()]
    let compiled = CompiledFunction("dead", passes: passes) { xs, _ in
      _ = try exp(xs[0]) * 3  // nobody reads it
      let y = try xs[0] + 1
      return [try y * y]
    }
    let x = try Tensor(shape: [3], floats: [1, 2, 3])
    #expect(try compiled([x]).first?.floats() == [4, 9, 16])
    let program = try #require(compiled.allPrograms.first)
    #expect(program.instructions.map(\.op.kind) == [.addScalar, .mul])
    // y's last reader is the mul, which lets it go.
    #expect(program.instructions[1].frees == program.instructions[1].inputs.prefix(1).map { $0 })
    #expect(try compiled([try Tensor(shape: [3], floats: [0, -1, 2])]).first?.floats() == [1, 0, 9])
  }

  @Test func tracingRunsNoKernelAndTheFirstCallRunsOnlyTheProgram() throws {
    let passes: [any CompilerPass] = [CheckStepScalars(), RemoveDeadValues(), PlanMemory(), ValidateMemoryPlan()]
    var tracedValueWasReadable = true
    let compiled = CompiledFunction("abstract", passes: passes) { xs, _ in
      _ = try exp(xs[0])  // dead: removed before anything runs
      let y = try xs[0] * xs[0]
      tracedValueWasReadable = (try? y.host()) != nil
      return [y]
    }
    let profiler = OpProfiler()
    let x = try Tensor(shape: [3], floats: [1, -2, 3])
    let first = try OpProfiler.record(into: profiler) { try compiled([x]) }
    #expect(try first[0].floats() == [1, 4, 9])
    #expect(!tracedValueWasReadable)
    let calls = Dictionary(uniqueKeysWithValues: profiler.ranked.map { ($0.kind, $0.entry.calls) })
    // The trace ran nothing; the first call ran the program once, without the dead exp.
    #expect(calls == [.mul: 1])
    #expect(try compiled([x])[0].floats() == [1, 4, 9])
  }

  @Test func aHostReadInsideTheTraceIsRefusedWithTheReason() throws {
    let compiled = CompiledFunction("reads") { xs, _ in
      let total = try sum(xs[0])
      return [try total.item() > 0 ? xs[0] * 2 : xs[0] * 3]
    }
    let x = try Tensor(shape: [3], floats: [1, -2, 3])
    #expect { try compiled([x]) } throws: { "\($0)".contains("read on the host while it is traced") && "\($0)".contains("step scalar") }
  }

  @Test func passesArePrintedToTheDumpFolder() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("compile-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let compiled = CompiledFunction("dumped", dumpDirectory: dir) { xs, _ in [try xs[0] * xs[0]] }
    _ = try compiled([try Tensor(shape: [2], floats: [1, 2])])
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    #expect(files == CompilerPasses.standard.indices.map { String(format: "dumped-1-%02d-", $0 + 1) + CompilerPasses.standard[$0].name + ".txt" }.reduce(["dumped-1-00-trace.txt"]) { $0 + [$1] })
    let last = try String(contentsOf: dir.appendingPathComponent(files.last!), encoding: .utf8)
    #expect(last.contains("mul(") && last.contains("memory plan:"))
  }
}

// MARK: - Memory planning

@Suite struct MemoryPlanTests {
  @Test(arguments: 0..<20 as Range<UInt64>) func packedRandomLifetimesNeverOverlap(seed: UInt64) throws {
    var rng = SplitMix64(seed: seed)
    let buffers = (0..<200).map { i -> MemoryPlan.Buffer in
      let start = Int(rng.next() % 100)
      let bytes = MemoryPlan.alignment * Int(1 + rng.next() % 64)
      return MemoryPlan.Buffer(slot: i, start: start, end: start + Int(rng.next() % 30), bytes: bytes)
    }
    let plan = MemoryPlan(packing: buffers)
    try plan.validate()
    #expect(plan.arenaBytes >= plan.peakLiveBytes && plan.arenaBytes < plan.totalBytes)
  }

  @Test func theValidatorCatchesOverlappingLiveBuffers() throws {
    var plan = MemoryPlan(packing: [
      MemoryPlan.Buffer(slot: 0, start: 0, end: 2, bytes: 128), MemoryPlan.Buffer(slot: 1, start: 1, end: 3, bytes: 128),
      MemoryPlan.Buffer(slot: 2, start: 3, end: 4, bytes: 128),
    ])
    try plan.validate()
    // Slot 2 may reuse slot 0's bytes (their lifetimes do not meet), not slot 1's.
    #expect(plan.arenaBytes == 256)
    plan.moveForTesting(slot: 1, to: 64)
    #expect { try plan.validate() } throws: { "\($0)".contains("%0") && "\($0)".contains("%1") }
  }
}
