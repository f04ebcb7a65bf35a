import ArgumentParser
import Foundation
import SegCore
import SegData
import SegNN
import SegTrain

/// `unet train`: with no data, trains a small U-Net on generated EM-like slices and prints its Dice.
struct TrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train a U-Net (with no --data-dir: a small model on generated EM-like data, a few minutes on 2 cores).")

  @Option(name: [.customLong("max-steps"), .customLong("max_steps")], help: "Training steps.")
  var maxSteps = 300
  @Option(name: [.customLong("batch-size"), .customLong("batch_size")], help: "Images per step.")
  var batchSize = 4
  @Option(name: [.customLong("learning-rate"), .customLong("learning_rate")], help: "Adam's learning rate.")
  var learningRate = 1e-3
  @Option(name: [.customLong("weight-decay"), .customLong("weight_decay")], help: "L2 weight decay.")
  var weightDecay = 5e-4
  @Option(name: [.customLong("log-every"), .customLong("log_every")], help: "Steps between log lines.")
  var logEvery = 25
  @Option(help: "Seed of every random choice.")
  var seed: UInt64 = 0
  @Flag(help: "Random flips of the training tiles.")
  var augment = false
  @Option(help: "Where to compute: cpu (oneDNN) or reference (plain Swift, slow).")
  var device = DeviceChoice.cpu

  @Option(name: [.customLong("base-filters"), .customLong("base_filters")], help: "Filters of the top level.")
  var baseFilters = 16
  @Option(help: "Number of poolings.")
  var depth = 3
  @Option(help: "valid (NVIDIA, output smaller than input) or same.")
  var padding = UNetConfig.Padding.same
  @Option(name: [.customLong("input-size"), .customLong("input_size")], help: "Side of the input tile.")
  var inputSize = 96
  @Option(name: [.customLong("upconv-kernel"), .customLong("upconv_kernel")], help: "Transposed conv kernel, 2 or 3.")
  var upconvKernel = 3
  @Option(name: [.customLong("synthetic-slices"), .customLong("synthetic_slices")], help: "Generated slices (the last fifth validate).")
  var syntheticSlices = 15
  @Option(name: [.customLong("synthetic-size"), .customLong("synthetic_size")], help: "Side of generated slices.")
  var syntheticSize = 192

  func run() throws {
    let backend = try device.backend()
    Backends.default = backend
    var config = UNetConfig()
    config.baseFilters = baseFilters
    config.depth = depth
    config.padding = padding
    config.inputSize = inputSize
    config.upconvKernel = upconvKernel
    try config.validate()
    guard syntheticSlices >= 2 else { throw ValidationError("--synthetic-slices: need at least 2 (training and validation)") }

    let slices = SyntheticEM.generate(count: syntheticSlices, size: syntheticSize, seed: seed)
    let validationCount = max(1, syntheticSlices / 5)
    let train = try TileSampler(slices: Array(slices.dropLast(validationCount)), config: config)
    let validation = try TileSampler(slices: Array(slices.suffix(validationCount)), config: config)

    var options = TrainingOptions()
    options.batchSize = batchSize
    options.learningRate = learningRate
    options.weightDecay = weightDecay
    options.maxSteps = maxSteps
    options.logEvery = logEvery
    options.seed = seed
    options.augment = augment
    let model = try UNet(config: config, seed: seed, on: backend)
    let trainer = Trainer(model: model, options: options)
    print("unet: \(config.padding.rawValue) U-Net, depth \(config.depth), \(config.baseFilters) base filters, "
      + "\(model.parameterCount) parameters, tile \(config.inputSize)->\(config.outputSize), on \(backend.name); "
      + "\(slices.count - validationCount) synthetic training slices, \(validationCount) validation")

    let (vx, vy) = try validation.centreBatch(on: backend)
    let before = try trainer.evaluate(images: vx, targets: vy)
    print(String(format: "step 0: eval_dice_score %.4f, foreground Dice %.4f", before.softDice, before.foregroundDice))
    let clock = ContinuousClock()
    let start = clock.now
    try trainer.train(
      nextBatch: { step in
        try train.randomBatch(size: batchSize, seed: seed, step: step, augment: augment, on: backend)
      },
      log: { step, m in
        let seconds = (clock.now - start).seconds
        print(String(format: "step %d: train_ce_loss %.4f, train_dice_loss %.4f, train_total_loss %.4f (mean of the window), %.1f img/s",
                     step, m.crossEntropy, m.dice, m.total, Double(step * batchSize) / seconds))
      })
    let after = try trainer.evaluate(images: vx, targets: vy)
    print(String(format: "validation: eval_dice_score %.4f, foreground Dice %.4f, eval_total_loss %.4f (%.0f s of training)",
                 after.softDice, after.foregroundDice, after.losses.total, (clock.now - start).seconds))
  }
}

extension Duration {
  /// The duration in seconds.
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

extension UNetConfig.Padding: ExpressibleByArgument {}
