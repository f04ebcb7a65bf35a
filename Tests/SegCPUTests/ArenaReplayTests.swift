@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Random graphs on the CPU

/// A random differentiable function of three [1,10,10,16] tensors from the ops a U-Net step runs
/// on the CPU (convolutions with bias and ReLU in oneDNN's blocked layouts, their backward ops
/// through the gradient, pooling, crops, pads, channel concats, adds and Swift elementwise ops),
/// built by `seed`.
private func randomCPUFunction(seed: UInt64, on cpu: CPUBackend) -> ([Tensor]) throws -> Tensor {
  { xs in
    var rng = SeededRandom(seed: seed)
    var pool = xs
    func pick() -> Tensor { pool[Int(rng.next() % UInt64(pool.count))] }
    func filter(_ cin: Int, _ cout: Int) throws -> Tensor {
      try Tensor(shape: [3, 3, cin, cout], floats: rng.doubles(9 * cin * cout).map { Float($0 * 0.1) }, on: cpu)
    }
    for _ in 0..<10 {
      let a = pick(), b = pick()
      let made: Tensor
      switch rng.next() % 8 {
      case 0: made = try a + b
      case 1: made = try relu(a * b)
      case 2:
        let bias = try Tensor(shape: [16], floats: rng.doubles(16).map(Float.init), on: cpu)
        made = try conv2d(a, filter(16, 16), bias: bias, padding: .same, activation: .relu)
      case 3: made = try conv2d(a, filter(16, 16), padding: .same) + b
      case 4:
        let up = try conv2dTranspose(maxPool2d(a), filter(16, 16), strides: (2, 2), padding: .same)
        made = try up * 0.5 + b
      case 5:
        let both = try concat([a, b], axis: 3)
        made = try conv2d(both, filter(32, 16), padding: .same)
      case 6: made = try pad(slice(a, starts: [0, 1, 1, 0], sizes: [1, 8, 8, 16]), before: [0, 1, 1, 0], after: [0, 1, 1, 0]) - b
      default: made = try exp(a * 0.1) * b
      }
      pool.append(made)
    }
    var total = try sum(pool[4] * pool[4])
    for t in pool.suffix(5) { total = try total + sum(t) }
    return total
  }
}

private func randomCPUInputs(_ seed: UInt64, on cpu: CPUBackend) throws -> [Tensor] {
  var rng = SeededRandom(seed: seed)
  return try (0..<3).map { _ in try Tensor(shape: [1, 10, 10, 16], floats: rng.doubles(1600).map(Float.init), on: cpu) }
}

/// A step returning `f`'s value and its gradients at the inputs, as the compiled functions here run it.
private func valueAndGradientsStep(_ f: @escaping ([Tensor]) throws -> Tensor) -> ([Tensor]) throws -> [Tensor] {
  { xs in
    let (value, grads) = try valueAndGradients(at: xs, of: f)
    return [value] + grads
  }
}

private func bits(_ ts: [Tensor]) throws -> [[UInt64]] { try ts.map { try $0.host().doubles.map(\.bitPattern) } }

/// The buffers `body` allocates on this task.
private func allocations(_ body: () throws -> Void) rethrows -> Int {
  let counter = AllocationCounter()
  try HostBuffer.$allocations.withValue(counter) { try body() }
  return counter.count
}

// MARK: - Tests

@Suite struct ArenaReplayTests {
  /// Compiled replays in the arena give the eager bits, the plan is proven sound, and each planned
  /// value is written into the arena: a replay allocates exactly as many buffers fewer than the
  /// same program replayed without its plan as the plan has buffers.
  @Test(arguments: 0..<10 as Range<UInt64>) func randomCPUGraphsReplayInTheArena(seed: UInt64) throws {
    let cpu = CPUBackend.shared
    let f = randomCPUFunction(seed: seed, on: cpu)
    let step = valueAndGradientsStep(f)
    let compiled = CompiledFunction("cpu-random\(seed)") { xs, _ in try step(xs) }
    let first = try randomCPUInputs(seed, on: cpu)
    #expect(try bits(compiled(first)) == bits(step(first)))
    for k in 1...3 as ClosedRange<UInt64> {
      let xs = try randomCPUInputs(seed &+ 100 * k, on: cpu)
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    #expect(compiled.traceCount == 1)
    let program = try #require(compiled.allPrograms.first)
    let plan = try #require(program.memoryPlan)
    try plan.validate()
    #expect(plan.buffers.count > 10 && plan.arenaBytes >= plan.peakLiveBytes && plan.arenaBytes <= plan.totalBytes)

    var unplanned = program
    unplanned.memoryPlan = nil
    let xs = try randomCPUInputs(seed &+ 7, on: cpu)
    var (a, b): ([Tensor], [Tensor]) = ([], [])
    // Once each first: the constants keep their small conversions from the first run.
    _ = try unplanned.run(xs)
    let own = try allocations { b = try unplanned.run(xs) }
    // The backend's one arena serves one replay at a time, and other tests replay on the CPU
    // backend too: a replay that finds it in use allocates as without a plan, so try again.
    var planned = Int.max
    for _ in 0..<50 where own - planned != plan.offsets.count {
      planned = min(planned, try allocations { a = try program.run(xs) })
    }
    #expect(try bits(a) == bits(b))
    // Every planned value, a concat's inputs in place too, is written into the arena.
    #expect(own - planned == plan.offsets.count, "\(own) buffers without the plan, \(planned) with it, \(plan.offsets.count) planned")
  }

  /// Two convolutions joined by a channel concat of one image, as the U-Net's skip joins its
  /// upsampled path: the convolutions write into the concat's buffer, which copies nothing, and
  /// the replays still give the eager bits.
  @Test func aConcatOfOneImageIsWrittenInPlace() throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 11)
    func random(_ dims: [Int], _ scale: Double = 1) throws -> Tensor {
      try Tensor(shape: Shape(dims), floats: rng.doubles(dims.reduce(1, *)).map { Float($0 * scale) }, on: cpu)
    }
    let (w1, w2, w3) = (try random([3, 3, 16, 16], 0.1), try random([3, 3, 16, 16], 0.1), try random([3, 3, 32, 16], 0.1))
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let (value, grads) = try valueAndGradients(at: xs) { ws in
        let a = try conv2d(ws[0], ws[1], padding: .same, activation: .relu)
        let b = try conv2d(ws[0], ws[2], padding: .same, activation: .relu)
        let y = try conv2d(concat([a, b], axis: 3), ws[3], padding: .same)
        return try sum(y * y)
      }
      return [value] + grads
    }
    let compiled = CompiledFunction("concat-in-place") { xs, _ in try step(xs) }
    for _ in 0..<3 {
      let xs = [try random([1, 12, 12, 16]), w1, w2, w3]
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    #expect(program.concatGroups.count == 1, "\(program)")
    let plan = try #require(program.memoryPlan)
    try plan.validate()
    for group in program.concatGroups {
      for m in group.members { #expect(plan.inside[m.slot] == group.concat && plan.offsets[m.slot] == plan.offsets[group.concat]! + m.offset) }
    }
    #expect(program.description.contains("in place"))
  }

  @Test func aBiasAndReLUAfterAConvolutionAreWrittenOverItsOutput() throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 12)
    func random(_ dims: [Int], _ scale: Double = 1) throws -> Tensor {
      try Tensor(shape: Shape(dims), floats: rng.doubles(dims.reduce(1, *)).map { Float($0 * scale) }, on: cpu)
    }
    let (w1, bias, w2) = (try random([3, 3, 16, 16], 0.1), try random([16]), try random([3, 3, 16, 16], 0.1))
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let (value, grads) = try valueAndGradients(at: xs) { ws in
        // The add and the ReLU fuse into one op, the last reader of the convolution's output.
        let a = try relu(conv2d(ws[0], ws[1], padding: .same) + ws[2])
        let y = try conv2d(a, ws[3], padding: .same)
        return try sum(y * y)
      }
      return [value] + grads
    }
    let compiled = CompiledFunction("write-in-place") { xs, _ in try step(xs) }
    for _ in 0..<3 {
      let xs = [try random([1, 12, 12, 16]), w1, bias, w2]
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    let plan = try #require(program.memoryPlan)
    try plan.validate()
    #expect(!program.inPlace.isEmpty, "\(program)")
    for (out, input) in program.inPlace {
      #expect(plan.inside[out] != nil && plan.offsets[out] == plan.offsets[input], "\(program)")
    }
    #expect(program.description.contains("written over"))
  }

  /// A lone ReLU backward (a convolution's fused ReLU, differentiated, whose cotangent comes from
  /// the next convolution's backward-data) writes over its cotangent, and the replays still give
  /// the eager bits.
  @Test func aReLUBackwardIsWrittenOverItsCotangent() throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 13)
    func random(_ dims: [Int], _ scale: Double = 1) throws -> Tensor {
      try Tensor(shape: Shape(dims), floats: rng.doubles(dims.reduce(1, *)).map { Float($0 * scale) }, on: cpu)
    }
    let (w1, w2) = (try random([3, 3, 16, 16], 0.1), try random([3, 3, 16, 16], 0.1))
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let (value, grads) = try valueAndGradients(at: xs) { ws in
        let a = try conv2d(ws[0], ws[1], padding: .same, activation: .relu)
        let y = try conv2d(a, ws[2], padding: .same, activation: .relu)
        return try sum(y * y)
      }
      return [value] + grads
    }
    let compiled = CompiledFunction("relu-backward-in-place") { xs, _ in try step(xs) }
    for _ in 0..<3 {
      let xs = [try random([1, 12, 12, 16]), w1, w2]
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    try #require(program.memoryPlan).validate()
    let lone = program.instructions.filter { $0.op.kind == .reluBackward }
    #expect(!lone.isEmpty && lone.allSatisfy { program.inPlace[$0.outputs[0]] == $0.inputs[0] }, "\(program)")
  }

  /// Outputs planned in the arena (a training step's gradients) give the eager bits and lie in
  /// the arena; while the caller keeps them, the next replay, finding no room beside them, runs
  /// without the arena and leaves them as they were.
  @Test func keptOutputsInTheArenaSurviveTheNextReplay() throws {
    // A backend of the test's own: its arena is this program's plan, which no other test's
    // replay takes meanwhile or grows.
    let cpu = CPUBackend()
    let f = randomCPUFunction(seed: 3, on: cpu)
    let step = valueAndGradientsStep(f)
    let compiled = CompiledFunction("outputs-in-arena", outputsInArena: true) { xs, _ in try step(xs) }
    let first = try randomCPUInputs(3, on: cpu)
    #expect(try bits(compiled(first)) == bits(step(first)))
    let program = try #require(compiled.allPrograms.first)
    let plan = try #require(program.memoryPlan)
    try plan.validate()
    #expect(program.placesOutputs && program.outputs.allSatisfy { plan.offsets[program.aliasRoot($0)] != nil }, "\(program)")

    let (xs, ys) = (try randomCPUInputs(31, on: cpu), try randomCPUInputs(32, on: cpu))
    let (expectedX, expectedY) = (try bits(step(xs)), try bits(step(ys)))
    func inArena(_ ts: [Tensor]) -> Bool { ts.allSatisfy { ($0.node.storage as? CPUStorage)?.origin.isInArena == true } }
    let kept = try compiled(xs)
    #expect(inArena(kept))
    let next = try compiled(ys)
    #expect(!inArena(next))
    #expect(try bits(next) == expectedY)
    #expect(try bits(kept) == expectedX)
  }

  /// A program replayed while another's outputs are kept in the arena (the updates beside a
  /// training step's gradients) writes its planned values in the free bytes between them: it
  /// allocates as many buffers fewer than without its plan as the plan has, gives the eager
  /// bits, and the kept outputs stay as they were.
  @Test func aReplayBesideKeptOutputsRunsInTheGapsBetweenThem() throws {
    let cpu = CPUBackend()
    let f = randomCPUFunction(seed: 5, on: cpu)
    let step = valueAndGradientsStep(f)
    let big = CompiledFunction("kept-outputs", outputsInArena: true) { xs, _ in try step(xs) }
    var rng = SeededRandom(seed: 6)
    let w = try Tensor(shape: [3, 3, 16, 16], floats: rng.doubles(2304).map { Float($0 * 0.1) }, on: cpu)
    let smallStep: ([Tensor]) throws -> [Tensor] = { xs in [try sum(conv2d(xs[0], w, padding: .same) * xs[1])] }
    let small = CompiledFunction("beside-kept") { xs, _ in try smallStep(xs) }
    let (xs, ys) = (try randomCPUInputs(51, on: cpu), try randomCPUInputs(52, on: cpu))
    _ = try big(xs)
    _ = try small(ys)
    let expected = try bits(step(xs))
    let kept = try big(xs)
    #expect(kept.allSatisfy { ($0.node.storage as? CPUStorage)?.origin.isInArena == true })
    let program = try #require(small.allPrograms.first)
    let plan = try #require(program.memoryPlan)
    var unplanned = program
    unplanned.memoryPlan = nil
    var (a, b): ([Tensor], [Tensor]) = ([], [])
    let own = try allocations { b = try unplanned.run(ys) }
    let planned = try allocations { a = try program.run(ys) }
    #expect(!plan.offsets.isEmpty && own - planned == plan.offsets.count, "\(own) buffers without the plan, \(planned) with it")
    #expect(try bits(a) == bits(b) && bits(a) == bits(smallStep(ys)))
    #expect(try bits(kept) == expected)
  }

  /// Winograd convolutions' scratch (their transformed tiles and filters) is planned in the arena:
  /// the first run counts each kernel's requests, the plan gives each a region live at its
  /// instruction alone, and a replay that serves them there allocates fewer buffers than one
  /// without those regions, with the same bits; a transform made in scratch is not cached.
  @Test func winogradScratchIsPlannedInTheArena() throws {
    let cpu = CPUBackend()
    var rng = SeededRandom(seed: 8)
    // Each filter is used once a direction: a filter used twice keeps its transform from its
    // second use (`WinogradFilterCache`), and the replays find it there.
    func filter() throws -> Tensor { try Tensor(shape: [3, 3, 16, 16], floats: rng.doubles(2304).map { Float($0 * 0.1) }, on: cpu) }
    let (w1, w2) = (try filter(), try filter())
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let (value, grads) = try valueAndGradients(at: [xs[0], w1, w2]) { ts in
        try sum(conv2d(relu(conv2d(ts[0], ts[1], padding: .same)), ts[2], padding: .same) * xs[1])
      }
      return [value] + grads
    }
    try ConvAlgorithm.with(.winograd) {
      let compiled = CompiledFunction("winograd-scratch") { xs, _ in try step(xs) }
      let xs = try randomCPUInputs(9, on: cpu)
      _ = try compiled(xs)
      let program = try #require(compiled.allPrograms.first)
      let plan = try #require(program.memoryPlan)
      try plan.validate()
      let convs = program.instructions.indices.filter { [.conv2d, .conv2dBackwardData, .conv2dBackwardFilter].contains(program.instructions[$0].op.kind) }
      #expect(convs.count >= 4 && convs.allSatisfy { program.instructions[$0].scratchBytes > 0 && plan.scratch[$0] != nil }, "\(program)")
      var withoutScratch = program
      for i in withoutScratch.instructions.indices { withoutScratch.instructions[i].scratchBytes = 0 }
      withoutScratch.memoryPlan = MemoryPlan(withoutScratch)
      var (a, b): ([Tensor], [Tensor]) = ([], [])
      let planned = try allocations { a = try program.run(xs) }
      for w in [w1, w2] {
        let filter = try #require(w.node.storage as? CPUStorage)
        #expect(!WinogradFilterCache.keeps(filter, rotated: false) && !WinogradFilterCache.keeps(filter, rotated: true))
      }
      // Without scratch regions the transforms are made in buffers of their own (and kept, the
      // filter having been seen before), so this replay comes second.
      let own = try allocations { b = try withoutScratch.run(xs) }
      #expect(planned < own, "\(planned) buffers with the scratch planned, \(own) without")
      #expect(try bits(a) == bits(b) && bits(a) == bits(step(xs)))
    }
  }

  /// Donated moments, and the weight when donated too (as the compiled trainer does): the replayed
  /// Adam update writes the new values over the old buffers (an undonated weight gets a buffer of
  /// its own), with the bits of the undonated update, and a donated weight's old storage says its
  /// values were rewritten; an input passed twice is donated by neither.
  @Test(arguments: [false, true]) func donatedStateIsUpdatedInItsOwnBuffers(weight: Bool) throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 14)
    func random(_ scale: Double = 1) throws -> Tensor {
      try Tensor(shape: [3, 3, 16, 16], floats: rng.doubles(2304).map { Float(abs($0) * scale) }, on: cpu)
    }
    let constants = AdamConstants(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, stepSize: 1e-3)
    let update: ([Tensor]) throws -> [Tensor] = { xs in
      let (p, m, v) = try adamUpdate(parameter: xs[0], m: xs[2], v: xs[3], gradient: xs[1], constants)
      return [p, m, v]
    }
    let compiled = CompiledFunction("donated-\(weight)", donated: (weight ? [(0, 0)] : []) + [(1, 2), (2, 3)]) { xs, _ in try update(xs) }
    func buffer(_ t: Tensor) -> UnsafeMutableRawPointer? { (t.node.storage as? CPUStorage)?.origin.pointer }
    _ = try compiled([try random(), try random(), try random(0.1), try random(0.01)])
    for _ in 0..<3 {
      let xs = [try random(), try random(), try random(0.1), try random(0.01)]
      let expected = try bits(update(xs))
      let (oldP, oldM, oldV) = (buffer(xs[0]), buffer(xs[2]), buffer(xs[3]))
      let generation = (xs[0].node.storage as? CPUStorage)?.generation
      let out = try compiled(xs)
      #expect(try bits(out) == expected)
      #expect(buffer(out[1]) == oldM && buffer(out[2]) == oldV && (buffer(out[0]) == oldP) == weight)
      #expect(((xs[0].node.storage as? CPUStorage)?.generation != generation) == weight)
    }
    let shared = try random(0.1), xs = [try random(), try random(), shared, shared]
    let expected = try bits(update(xs))
    let out = try compiled(xs)
    #expect(try bits(out) == expected && buffer(out[1]) != buffer(shared) && buffer(out[2]) != buffer(shared))
  }

  /// A kernel that takes its region and then declines leaves the next candidate to allocate, and
  /// a region too small for the output is not used.
  @Test func aRegionIsHandedOutOnceAndOnlyWhenTheOutputFits() throws {
    let arena = CPUArena(bytes: 4096)
    let placement = OutputPlacement([OutputPlacement.Region(arena: arena, offset: 128, bytes: 256), nil])
    #expect(placement.take(0, bytes: 512) == nil)
    #expect(placement.take(1, bytes: 8) == nil)
    let region = try #require(placement.take(0, bytes: 256))
    #expect(region.offset == 128)
    #expect(placement.take(0, bytes: 256) == nil)
    // Inside a kernel: the buffer lies in the arena at its offset.
    let inArena = OutputPlacement.$current.withValue(OutputPlacement([OutputPlacement.Region(arena: arena, offset: 192, bytes: 256)])) {
      HostBuffer.output(0, byteCount: 200)
    }
    #expect(inArena.pointer == arena.buffer.pointer + 192)
    #expect(HostBuffer.output(0, byteCount: 200).pointer != arena.buffer.pointer + 192)
  }
}
