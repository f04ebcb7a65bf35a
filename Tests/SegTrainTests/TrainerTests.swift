import SegCore
import SegData
import SegNN
import SegTestSupport
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
    var options = TrainingOptions()
    options.maxSteps = 20
    options.learningRate = 3e-3
    options.logEvery = 5
    let trainer = Trainer(
      model: try UNet(config: config, seed: 1, on: ReferenceBackend.shared), optimizer: Adam(learningRate: options.learningRate),
      options: options)
    var logged: [Double] = []
    try trainer.train(
      nextBatch: { step in try pipelineBatch(slices, config: config, size: 2, seed: 9, step: step, augment: true) },
      log: { _, m in logged.append(m.total) })
    #expect(logged.count == 4)
    #expect(logged.last! < logged.first!, "window means of the total loss: \(logged)")
    #expect(trainer.optimizer.step == 20)
  }

  @Test func weightDecayThroughTheGradientEqualsTheL2Loss() throws {
    var config = UNetConfig()
    (config.baseFilters, config.depth, config.padding, config.inputSize, config.dropout) = (2, 1, .same, 8, 0)
    var options = TrainingOptions()
    options.weightDecay = 0.05
    let backend = ReferenceBackend.shared
    let x = try Tensor(randomHost(TensorType([2, 8, 8, 1], .f64), seed: 1), on: backend)
    var labels = [Double](repeating: 0, count: 2 * 8 * 8 * 2)
    for p in 0..<(labels.count / 2) { labels[2 * p + p % 2] = 1 }
    let t = try Tensor(HostTensor(type: TensorType([2, 8, 8, 2], .f64), doubles: labels), on: backend)

    let trained = try UNet(config: config, seed: 4, dtype: .f64, on: backend)
    let trainer = Trainer(model: trained, optimizer: Adam(learningRate: 0.01), options: options)
    let metrics = try trainer.step(images: x, targets: t)

    // The reference's way: the L2 term inside the loss, differentiated with it.
    let reference = try UNet(config: config, seed: 4, dtype: .f64, on: backend)
    let weights = reference.parameters.map(\.value)
    let loss = try segmentationLoss(logits: reference(x), targets: t).total + l2Penalty(weights, weightDecay: 0.05)
    try Adam(learningRate: 0.01).update(reference.parameters, gradients: gradients(of: loss, wrt: weights))

    #expect(abs(metrics.total - (try loss.item())) < 1e-12)
    for (a, b) in zip(trained.parameters, reference.parameters) {
      let (u, v) = (try a.value.host().doubles, try b.value.host().doubles)
      #expect(zip(u, v).allSatisfy { abs($0 - $1) < 1e-12 }, "\(a.name)")
    }
  }

  @Test func tilesLargerThanSlicesAreRejected() throws {
    var config = UNetConfig()
    config.padding = .same
    config.depth = 2
    config.inputSize = 64
    let slices = SyntheticEM.generate(count: 1, size: 32, seed: 2)  // 64x64 outputs do not fit
    #expect { try TileSampler(slices: slices, config: config) } throws: { ($0 as? SettingError)?.setting == .inputSize }
  }
}
