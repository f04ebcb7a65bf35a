import Foundation
import SegCore
import SegCPU
import SegData
import SegNN
import SegTrain
import Testing

// MARK: - The compiled step equals the eager one

@Suite struct CompiledTrainerTests {
  /// Weights, Adam's moments and step, and the loss scaler, after `steps` updates of `trainer` on
  /// `batch(i)`, with each step's metrics.
  static func run(_ trainer: Trainer, steps: Int, batch: (Int) throws -> (Tensor, Tensor)) throws -> ([String: HostTensor], [StepMetrics]) {
    var metrics: [StepMetrics] = []
    try trainer.train(nextBatch: batch) { _, m, _ in metrics.append(m) }
    let (state, step) = try LossScaledTrainingTests.state(trainer)
    #expect(step == steps)
    return (state, metrics)
  }

  static func sameMetrics(_ a: [StepMetrics], _ b: [StepMetrics]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy {
      $0.crossEntropy.bitPattern == $1.crossEntropy.bitPattern && $0.dice.bitPattern == $1.dice.bitPattern
        && $0.total.bitPattern == $1.total.bitPattern && $0.skipped == $1.skipped
    }
  }

  @Test func twentyCPUStepsOfATinyUNetAreTheEagerBits() throws {
    var config = UNetConfig()
    (config.baseFilters, config.depth, config.padding, config.inputSize) = (4, 2, .same, 32)
    let programs = try Self.compareTwentySteps(config: config, batch: 2)
    // The same bits with the elementwise chains fused: the loss's arithmetic, the ReLU backward
    // and the update's weight decay each run as one op.
    let fused = programs.flatMap(\.instructions).filter { $0.op.kind == .fusedElementwise }
    #expect(fused.count >= 3, "\(fused.count) fused ops")
  }

  @Test func twentyCPUStepsOfAValidUNetOfOneImageWriteItsConcatsInPlace() throws {
    // One image, 16 filters: the skips' crops and the upsampled paths are whole channel blocks, so
    // the concats are written in place by their producers, the encoders' gradients are each one
    // blocked op, and the steps stay the eager bits.
    var config = UNetConfig()
    (config.baseFilters, config.depth, config.padding) = (16, 2, .valid)
    config.inputSize = try #require((40...90).first { size in
      var c = config
      c.inputSize = size
      return c.outputSize > 0 && (try? c.validate()) != nil
    })
    let programs = try Self.compareTwentySteps(config: config, batch: 1)
    #expect(programs.contains { !$0.concatGroups.isEmpty })
    // Each encoder's gradient from its pool and its skip is one op (in the blocked layout).
    #expect(programs.flatMap(\.instructions).filter { $0.op.kind == .skipGradient }.count == 2)
  }

  /// Trains `config` for 20 steps of `batch` images eagerly and compiled on the CPU, expects the
  /// same bits and sound plans, and returns the compiled programs.
  static func compareTwentySteps(config: UNetConfig, batch: Int) throws -> [Program] {
    let backend = CPUBackend.shared
    var options = TrainingOptions()
    (options.learningRate, options.maxSteps, options.seed, options.batchSize) = (1e-3, 20, 7, batch)
    let slices = SyntheticEM.generate(count: 3, size: max(48, config.inputSize + 8), seed: 2)
    let batches = try (0..<20).map { i -> (Tensor, Tensor) in
      let (x, y) = try pipelineBatch(slices, config: config, size: batch, seed: 4, step: i)
      return (try x.to(backend), try y.to(backend))
    }
    func trainer(_ compiled: Bool) throws -> Trainer {
      let model = try UNet(config: config, seed: 5, on: backend)
      let adam = Adam(learningRate: options.learningRate)
      return compiled ? CompiledTrainer(model: model, optimizer: adam, options: options) : Trainer(model: model, optimizer: adam, options: options)
    }
    let eager = try trainer(false), compiled = try trainer(true)
    let (e, em) = try Self.run(eager, steps: 20) { batches[$0] }
    var traces: [Int] = []
    let (c, cm) = try Self.run(compiled, steps: 20) { i in
      traces.append((compiled as? CompiledTrainer)?.traceCount ?? -1)
      return batches[i]
    }
    expectSame(e, c)
    #expect(Self.sameMetrics(em, cm), "\(em.map(\.total)) vs \(cm.map(\.total))")
    // Traced in the first step (gradients, penalty, an update per parameter shape), then replayed.
    let programs = (compiled as? CompiledTrainer)?.programs ?? []
    #expect(traces.first == 0 && Set(traces.dropFirst()) == [programs.count], "\(traces)")
    for program in programs {
      let plan = try #require(program.memoryPlan)
      try plan.validate()
      print("compiled U-Net step: \(program.instructions.count) instructions, \(plan.summary)")
      #expect(plan.arenaBytes <= plan.totalBytes && plan.arenaBytes >= plan.peakLiveBytes)
    }
    return programs
  }

  @Test func f16StepsWithALossScalerAreTheEagerBitsThroughSkipsAndGrowth() throws {
    // f16 on the reference path; a growth interval of 3 doubles the scale every 3 steps, and a
    // scale of 2^30 overflows the f16 gradients, so steps are skipped, retried and rescaled: the
    // scale's inverse and Adam's step size change as step scalars.
    func trainer(_ compiled: Bool) throws -> Trainer {
      let t = try LossScaledTrainingTests.trainer(computeType: .f16, scaler: LossScaler(initialScale: 0x1p27, growthInterval: 3), maxSteps: 20)
      return compiled ? CompiledTrainer(model: t.model, optimizer: t.optimizer, options: t.options, lossScaler: t.lossScaler) : t
    }
    let eager = try trainer(false), compiled = try trainer(true)
    let (e, em) = try Self.run(eager, steps: 20, batch: LossScaledTrainingTests.batch)
    let (c, cm) = try Self.run(compiled, steps: 20, batch: LossScaledTrainingTests.batch)
    expectSame(e, c)
    #expect(Self.sameMetrics(em, cm))
    #expect(eager.lossScaler == compiled.lossScaler)
    #expect((compiled as? CompiledTrainer)?.programs.contains { p in p.instructions.contains { $0.op.kind == .fusedElementwise } } == true)
    let scaler = try #require(compiled.lossScaler)
    print("compiled f16: \(scaler.skippedSteps) steps skipped, scale now 2^\(Int(log2(scaler.scale)))")
    #expect(scaler.skippedSteps > 0)
  }

  @Test(arguments: [true, false]) func aLearningRateScheduleAndAChangingLossScaleReplayAsEager(fused: Bool) throws {
    // The learning rate falls every step (Adam's step size is a marked step scalar, in the fused
    // update and in the ops), and the f16 loss scale grows and is halved on overflow; the weight
    // decay equals the first scale's inverse, so a binding found by value would confuse the two.
    func trainer(_ compiled: Bool) throws -> Trainer {
      let t = try LossScaledTrainingTests.trainer(computeType: .f16, scaler: LossScaler(initialScale: 0x1p27, growthInterval: 3), maxSteps: 12)
      var options = t.options
      options.weightDecay = 0x1p-27
      t.optimizer.usesFusedUpdate = fused
      return compiled
        ? CompiledTrainer(model: t.model, optimizer: t.optimizer, options: options, lossScaler: t.lossScaler)
        : Trainer(model: t.model, optimizer: t.optimizer, options: options, lossScaler: t.lossScaler)
    }
    var traces: [Int] = []
    func scheduled(_ t: Trainer) -> (Int) throws -> (Tensor, Tensor) {
      { step in
        if let c = t as? CompiledTrainer { traces.append(c.traceCount) }
        t.optimizer.learningRate = 1e-2 * pow(0.8, Double(step))
        return try LossScaledTrainingTests.batch(step)
      }
    }
    let eager = try trainer(false), compiled = try trainer(true)
    let (e, em) = try Self.run(eager, steps: 12, batch: scheduled(eager))
    let (c, cm) = try Self.run(compiled, steps: 12, batch: scheduled(compiled))
    expectSame(e, c)
    #expect(Self.sameMetrics(em, cm))
    #expect(eager.lossScaler == compiled.lossScaler)
    #expect(try #require(compiled.lossScaler).skippedSteps > 0)
    // The schedule and the changing scale replay: the last steps trace nothing.
    #expect(traces.count == 12 && Set(traces.suffix(6)).count == 1, "\(traces)")
  }

  @Test func aTinyUNetsInferenceProgramReplaysInTheArena() throws {
    // Valid padding: the skips are centre-cropped and concatenated, as in the reference's U-Net.
    let backend = CPUBackend.shared
    var config = UNetConfig()
    (config.baseFilters, config.depth, config.padding) = (8, 2, .valid)
    config.inputSize = try #require((40...90).first { size in
      var c = config
      c.inputSize = size
      return c.outputSize > 0 && (try? c.validate()) != nil
    })
    let s = config.inputSize
    let model = try UNet(config: config, seed: 3, on: backend)
    let eager: (Tensor) throws -> Tensor = { x in try withoutGradients { try softmax(model(x)) } }
    let predict = CompiledFunction("predict") { xs, _ in try withoutGradients { [try softmax(model(xs[0]))] } }
    for seed in 0..<4 as Range<UInt64> {
      var rng = SplitMix64(seed: seed)
      let x = try Tensor(shape: [2, s, s, 1], floats: (0..<2 * s * s).map { _ in rng.nextUnitFloat() }, on: backend)
      let out = try predict([x] + model.parameters.map(\.value))[0]
      #expect(try out.host().doubles.map(\.bitPattern) == eager(x).host().doubles.map(\.bitPattern))
    }
    #expect(predict.traceCount == 1)
    let program = try #require(predict.allPrograms.first)
    let plan = try #require(program.memoryPlan)
    try plan.validate()
    print("compiled U-Net inference: \(program.instructions.count) instructions, \(plan.summary)")
    #expect(plan.buffers.count > 10 && plan.arenaBytes >= plan.peakLiveBytes && plan.arenaBytes < plan.totalBytes)
  }
}
