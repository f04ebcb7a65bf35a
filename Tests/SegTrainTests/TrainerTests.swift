import SegCore
import SegData
import SegNN
import SegTrain
import Testing

@Suite struct TrainerTests {
  @Test func twentyStepsLowerTheLoss() throws {
    var config = UNetConfig()
    config.baseFilters = 4
    config.depth = 2
    config.padding = .same
    config.inputSize = 16
    let slices = SyntheticEM.generate(count: 4, size: 32, seed: 2)
    let sampler = try TileSampler(slices: slices, config: config)
    var options = TrainingOptions()
    options.maxSteps = 20
    options.learningRate = 3e-3
    options.logEvery = 5
    let trainer = Trainer(
      model: try UNet(config: config, seed: 1, on: ReferenceBackend.shared), optimizer: Adam(learningRate: options.learningRate),
      options: options)
    var logged: [Double] = []
    try trainer.train(
      nextBatch: { step in try sampler.randomBatch(size: 2, seed: 9, step: step, augment: true, on: ReferenceBackend.shared) },
      log: { _, m in logged.append(m.total) })
    #expect(logged.count == 4)
    #expect(logged.last! < logged.first!, "window means of the total loss: \(logged)")
    #expect(trainer.optimizer.step == 20)
  }

  @Test func tilesLargerThanSlicesAreRejected() throws {
    var config = UNetConfig()
    config.padding = .same
    config.depth = 2
    config.inputSize = 64
    let slices = SyntheticEM.generate(count: 1, size: 32, seed: 2)  // 64x64 outputs do not fit
    #expect { try TileSampler(slices: slices, config: config) } throws: { "\($0)".contains("--input-size") }
  }
}
