import SegCore
import SegDistributed
import SegNN

// MARK: - Training options

/// The reference's training hyper-parameters.
public struct TrainingOptions: Sendable {
  public var batchSize = 1
  public var learningRate = 1e-4
  public var weightDecay = 5e-4
  public var maxSteps = 1000
  public var logEvery = 100
  public var seed: UInt64 = 0
  /// How the ReLU layers' kernels of a fresh model start (the reference: Glorot-uniform).
  public var weightInitializer = WeightInitializer.glorot
  /// How the head's bias of a fresh model starts.
  public var headBias = HeadBias.zero
  /// Updates over which the learning rate ramps linearly up to `learningRate` (0: constant, as the
  /// reference). It depends only on the step, so a resumed run keeps the schedule.
  public var learningRateWarmupSteps = 0
  /// How the step is compiled (`CompiledTrainer`: traced once, then replayed); nil runs it eagerly.
  public var compile: CompileOptions?
  /// Loss-scaled steps skipped in a row after which an fp16 run stops as diverged.
  public var maxSkippedStepsInARow = Divergence.defaultMaxSkippedStepsInARow
  public init() {}

  /// The learning rate of the update after `done` updates: `learningRate` * (done + 1) / warm-up
  /// during the warm-up, then `learningRate`.
  public func learningRate(afterUpdates done: Int) -> Double {
    guard learningRateWarmupSteps > 0, done < learningRateWarmupSteps else { return learningRate }
    return learningRate * Double(done + 1) / Double(learningRateWarmupSteps)
  }
}

/// How the head's bias starts in a fresh model.
public enum HeadBias: String, Sendable, CaseIterable {
  /// Zero, as the reference: the first prediction is uniform over the classes.
  case zero
  /// log of each class's pixel frequency in the training masks: the first prediction is the prior.
  case prior
}

// MARK: - Metrics

/// Losses of one step, or their means over a logging window of `steps` steps.
public struct StepMetrics: Sendable {
  public var crossEntropy = 0.0
  public var dice = 0.0
  /// Cross-entropy + Dice loss + weight decay.
  public var total = 0.0
  public var steps = 1
  /// True for a step whose gradients were inf or NaN under loss scaling: nothing was updated.
  public var skipped = false

  /// Sums of the losses and of the step counts.
  static func + (a: StepMetrics, b: StepMetrics) -> StepMetrics {
    StepMetrics(crossEntropy: a.crossEntropy + b.crossEntropy, dice: a.dice + b.dice, total: a.total + b.total, steps: a.steps + b.steps)
  }

  /// The means of a sum.
  var mean: StepMetrics {
    let n = Double(max(steps, 1))
    return StepMetrics(crossEntropy: crossEntropy / n, dice: dice / n, total: total / n, steps: steps)
  }
}

// MARK: - Trainer

/// The reference's training loop, eager: forward, loss (cross-entropy + soft Dice + L2), gradients,
/// Adam (`CompiledTrainer` replays the same step compiled). Training metrics are averaged over each logging window (the reference logs single steps).
/// With a `lossScaler` (fp16), the loss's cotangent is the scale, the gradients are checked for
/// inf/NaN, and unscaled before weight decay and Adam: on the host with one download, or with the
/// fused update on the device, whose state (`StepState`) the host reads only when it asks.
public class Trainer {
  public let model: UNet
  public let optimizer: Adam
  public let options: TrainingOptions
  /// The dynamic loss scale; nil trains unscaled (fp32, tf32, bf16).
  public var lossScaler: LossScaler?
  /// Averages the gradients, losses and the loss scaler's finite check over the processes of a
  /// data-parallel run while the backward pass runs; nil trains alone.
  public var reducer: GradientReducer?
  /// The fused step's state on the device (`StepState`) and the host's view it was made from or
  /// last read into (`DeviceState.swift`).
  var deviceState: (tensor: Tensor, hostView: HostView)?
  /// Fused steps queued since the host last read the device's state: the host takes each as
  /// applied (for the dropout seed and a warm-up's learning rate) until it reads.
  public internal(set) var unreadSteps = 0
  /// The metrics of the last step, once known on the host.
  var lastMetrics: StepMetrics?
  /// The device's state as the host last read it.
  var lastReadState: [Float]?

  /// A trainer of `model` with `optimizer` (fresh, or restored from a checkpoint), scaling the
  /// loss with `lossScaler` when given.
  public init(model: UNet, optimizer: Adam, options: TrainingOptions, lossScaler: LossScaler? = nil) {
    self.model = model
    self.options = options
    self.optimizer = optimizer
    self.lossScaler = lossScaler
  }

  /// One optimisation step on images [N,S,S,C] and one-hot targets [N,S',S',K], and its metrics
  /// (`queueStep`, then `readStep`). Under loss scaling, a step whose gradients hold inf or NaN
  /// changes neither the weights nor Adam's state or step count, halves the scale and returns
  /// metrics with `skipped` set; one that does so at the minimum scale throws, since retrying
  /// cannot help.
  public func step(images: Tensor, targets: Tensor) throws -> StepMetrics {
    try queueStep(images: images, targets: targets)
    return try readStep()
  }

  /// `step` without asking for its metrics: with the fused update (a GPU) the device decides the
  /// loss scaler's skip and counts Adam's updates, and the host reads nothing (`readStep` does,
  /// when asked); elsewhere the host decides as the step runs.
  public func queueStep(images: Tensor, targets: Tensor) throws {
    let params = model.parameters
    let stepIndex = UInt64(optimizer.step + unreadSteps)
    // The dropout mask depends only on (seed, step), so a resumed run repeats an uninterrupted one.
    // Each rank of a data-parallel run draws its own masks (rank 0's are a lone run's).
    let rank = UInt64(reducer?.communicator.rank ?? 0)
    let rankSalt = rank == 0 ? 0 : CounterRandom.mix(0xD207_0000_0000_0000 | rank)
    let logits = try model(images, dropoutSeed: CounterRandom.mix(options.seed ^ CounterRandom.mix(stepIndex) ^ rankSalt))
    let parts = try segmentationLoss(logits: logits, targets: targets)
    let weights = params.map(\.value)
    let loss = try parts.total
    // Seeding the backward pass with the scale is the same as differentiating scale * loss, without
    // the extra node; a power of two scales every rounding exactly. The fused update's scale is
    // the device's.
    let fused = reducer == nil && loss.backend.multiTensorOptimizer && optimizer.usesFusedUpdate && weights.allSatisfy { $0.dtype == .f32 }
    let state = try fused ? currentDeviceState(on: loss.backend) : nil
    let scale = lossScaler?.scale ?? 1
    let seed = try lossScaler.map { s in
      try state.map { try lossScaleSeed($0, like: loss) } ?? Tensor(repeating: s.scale, shape: loss.shape, dtype: loss.dtype, on: loss.backend)
    }
    let dataGradients: [Tensor]
    var agreed: (finite: Bool, crossEntropy: Double, dice: Double)?
    if let reducer {
      reducer.begin(count: weights.count)
      _ = try gradients(of: loss, wrt: weights, seed: seed, ready: reducer.ready)
      let local = [try parts.crossEntropy.item(), try parts.dice.item()]
      let reduced = try reducer.finish(checkFinite: lossScaler != nil, losses: local)
      dataGradients = reduced.gradients
      agreed = (reduced.finite, reduced.losses[0], reduced.losses[1])
    } else {
      dataGradients = try gradients(of: loss, wrt: weights, seed: seed)
    }
    // The fused update decides a loss-scaled step's skip on the device, from this rank's gradients
    // alone: a data-parallel run takes the path below, whose finite flag all ranks agreed on.
    if let state {
      let next = try optimizer.updateAll(
        params, gradients: dataGradients, crossEntropy: parts.crossEntropy, dice: parts.dice, state: state,
        weightDecay: options.weightDecay, growthInterval: lossScaler?.growthInterval ?? 0)
      queued(next)
      return
    }
    lastMetrics = try hostDecidedUpdate(params, weights, dataGradients, parts, agreed, scale: scale)
  }

  /// The update of a step decided on the host: the loss scaler's verdict from one read of the
  /// gradients' finiteness (or the ranks' agreed one), then weight decay and Adam per parameter.
  private func hostDecidedUpdate(
    _ params: [Parameter], _ weights: [Tensor], _ dataGradients: [Tensor], _ parts: SegmentationLoss,
    _ agreed: (finite: Bool, crossEntropy: Double, dice: Double)?, scale: Double
  ) throws -> StepMetrics {
    if var scaler = lossScaler {
      let finite = try agreed?.finite ?? LossScaler.allFinite(dataGradients)
      let apply = try scaler.decide(gradientsFinite: finite, step: optimizer.step + 1, computeType: model.computeType)
      lossScaler = scaler
      if !apply {
        let ce = try agreed?.crossEntropy ?? parts.crossEntropy.item(), dice = try agreed?.dice ?? parts.dice.item()
        return StepMetrics(crossEntropy: ce, dice: dice, total: ce + dice, skipped: true)
      }
    }
    // The reference's L2 term, weightDecay * sum(w^2) / 2, enters through its gradient
    // weightDecay * w and its value (for the logged total): the same as adding it to the loss,
    // without building and walking its backward graph over every parameter. It is added after
    // unscaling, so that it is never scaled.
    let (penalty, grads) = try withoutGradients {
      (try l2Penalty(weights, weightDecay: options.weightDecay).item(),
       try zip(dataGradients, weights).map { g, w in try (scale == 1 ? g : g * (1 / scale)) + w * options.weightDecay })
    }
    try optimizer.update(params, gradients: grads)
    let ce = try agreed?.crossEntropy ?? parts.crossEntropy.item(), dice = try agreed?.dice ?? parts.dice.item()
    return StepMetrics(crossEntropy: ce, dice: dice, total: ce + dice + penalty)
  }

  /// Runs steps until the optimizer has made `options.maxSteps` (continuing a resumed count), on
  /// batches from `nextBatch(step)`; calls `stepEnded(step, metrics, window)` after each update
  /// whose metrics were read with them and, every `logEvery` steps and at the last, the metrics
  /// averaged over the updates since the previous window (nil between). The metrics are read at
  /// every step where `readsAt(step)` holds (by default every step) and at each window's end.
  /// A step read as skipped by the loss scaler is retried on the same batch at the halved scale
  /// (so the run still makes `maxSteps` updates); skipped steps are counted in
  /// `lossScaler.skippedSteps`, not in the means. With the fused update (a GPU) the steps between
  /// reads are queued with no host read (`queueStep`): the host takes each as applied until it
  /// reads, so a skipped one among them has used its batch. A loss that is inf or NaN, or
  /// `maxSkippedStepsInARow` skipped steps in a row, stop the run at the read that sees them with
  /// an error naming the step.
  public func train(
    nextBatch: (Int) throws -> (Tensor, Tensor), readsAt: (Int) -> Bool = { _ in true },
    stepEnded: (Int, StepMetrics, StepMetrics?) throws -> Void
  ) throws {
    var window: StepMetrics?
    var retry: (Tensor, Tensor)?
    var skippedInARow = 0
    let logEvery = max(options.logEvery, 1)
    while optimizer.step + unreadSteps < options.maxSteps {
      let taken = optimizer.step + unreadSteps
      let (x, y) = try retry ?? nextBatch(taken)
      retry = nil
      if options.learningRateWarmupSteps > 0 { optimizer.learningRate = options.learningRate(afterUpdates: taken) }
      try queueStep(images: x, targets: y)
      let queued = unreadSteps > 0
      if queued, (taken + 1) % logEvery != 0, taken + 1 != options.maxSteps, !readsAt(taken + 1) { continue }
      let m = try readStep()
      if m.skipped {
        skippedInARow = queued ? deviceSkippedInARow : skippedInARow + 1
        if skippedInARow >= max(options.maxSkippedStepsInARow, 1) {
          throw Divergence.skipsError(step: optimizer.step + 1, skipped: skippedInARow, learningRate: options.learningRate)
        }
        retry = (x, y)
        continue
      }
      skippedInARow = 0
      let done = optimizer.step
      let windowEnds = done % logEvery == 0 || done == options.maxSteps
      var means: StepMetrics?
      if queued {
        // The device summed the window's applied steps, the unread ones among them.
        means = windowEnds ? try takeDeviceWindow() : nil
      } else {
        window = window.map { $0 + m } ?? m
        if windowEnds { (means, window) = (window?.mean, nil) }
      }
      for total in [m.total, means?.total ?? 0] where !total.isFinite {
        throw Divergence.lossError(step: done, loss: total, learningRate: options.learningRate)
      }
      try stepEnded(done, m, means)
    }
  }

  /// `train(nextBatch:stepEnded:)` with the window's means to `log(step, means)`, then
  /// `afterStep(step)` after every update.
  public func train(
    nextBatch: (Int) throws -> (Tensor, Tensor), afterStep: (Int) throws -> Void = { _ in },
    log: (Int, StepMetrics) throws -> Void
  ) throws {
    try train(nextBatch: nextBatch) { step, _, means in
      if let means { try log(step, means) }
      try afterStep(step)
    }
  }
}
