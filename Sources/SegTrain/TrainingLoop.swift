import SegCore
import SegData
import SegNN

// MARK: - Batches

/// Where training batches come from, one after another: batch i is the i-th update's. The runner's
/// training and `unet doctor --check`'s training comparison both take a `TrainingPipeline`.
public protocol BatchSource: AnyObject {
  /// The next batch on the host: images [N,S,S,C] and one-hot targets [N,S',S',K].
  func next() throws -> HostBatch
}

extension TrainingPipeline: BatchSource {}

// MARK: - Events

/// What a callback is told after each update.
public struct StepEvent: Sendable {
  /// Updates done, counting those of a resumed checkpoint.
  public let step: Int
  /// The update count the loop runs to.
  public let maxSteps: Int
  /// This update's losses.
  public let metrics: StepMetrics
  /// On a logging step (every `logEvery` and the last), the means over the steps since the last
  /// one; nil between.
  public let window: StepMetrics?
  /// Images trained on per second since the loop started.
  public let imagesPerSecond: Double
  /// The dynamic loss scale after the update; nil when the run does not scale the loss.
  public let lossScaler: LossScaler?
}

/// What a callback is told when a run has its data and is about to build its model.
public struct RunContext {
  /// Everything the run was asked to do.
  public let settings: RunSettings
  /// The backend's name, as `Backend.name`.
  public let backendName: String
  /// The precision, resolved once for the backend.
  public let precision: PrecisionPolicy
  /// The labelled slices evaluations score (the validation fold, or every slice).
  public let validation: [LabelledSlice]
  /// Each class's share of the training masks' pixels (empty when the run does not train).
  public let classPrior: [Double]

  /// The context of a run of `settings` on `backendName`, validating on `validation`, whose
  /// training masks have the class frequencies `classPrior`.
  public init(
    settings: RunSettings, backendName: String, precision: PrecisionPolicy, validation: [LabelledSlice], classPrior: [Double] = []
  ) {
    (self.settings, self.backendName, self.precision, self.validation) = (settings, backendName, precision, validation)
    self.classPrior = classPrior
  }
}

// MARK: - Callbacks

/// Something that follows a run: logs it, evaluates, saves, draws progress or times ops. Every hook
/// has an empty default, so a callback implements only what it needs; callbacks run in the order
/// they are given, and an error from one ends the run.
public protocol TrainingCallback: AnyObject {
  /// Runs `body`, the whole run, inside this callback's scope (e.g. an op profiler's recording).
  func scope<T>(_ body: () throws -> T) throws -> T
  /// The run has loaded its data and is about to build or load its model.
  func runStarted(_ run: RunContext) throws
  /// The loop is about to make its first update.
  func trainingStarted(_ loop: TrainingLoop) throws
  /// Whether the loop is to read the step's metrics from the device after update `step` (a GPU
  /// queues the steps between logging steps unread): a callback that acts at that update says so.
  func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool
  /// An update is done and its metrics read (skipped loss-scaled steps are not updates; with the
  /// fused update only the updates the loop reads are told, each window's last among them).
  func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws
  /// The model was evaluated after `step` updates (during training or in evaluate mode).
  func evaluated(_ report: EvaluationReport, at step: Int) throws
  /// The loop made its last update.
  func trainingEnded(_ loop: TrainingLoop) throws
  /// Every mode of the run is done.
  func runEnded() throws
}

/// Empty defaults: a hook a callback does not implement does nothing (and `scope` just runs the body).
extension TrainingCallback {
  public func scope<T>(_ body: () throws -> T) throws -> T { try body() }
  public func runStarted(_ run: RunContext) throws {}
  public func trainingStarted(_ loop: TrainingLoop) throws {}
  public func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool { false }
  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {}
  public func evaluated(_ report: EvaluationReport, at step: Int) throws {}
  public func trainingEnded(_ loop: TrainingLoop) throws {}
  public func runEnded() throws {}
}

/// Callbacks in order, told of each event one after another.
public struct TrainingCallbacks {
  /// The callbacks, in the order they are told.
  public let all: [any TrainingCallback]

  /// `callbacks`, told in this order.
  public init(_ callbacks: [any TrainingCallback]) { all = callbacks }

  /// `body` inside every callback's scope, the first callback's outermost.
  public func scope<T>(_ body: () throws -> T) throws -> T { try nest(all[...], body) }

  private func nest<T>(_ callbacks: ArraySlice<any TrainingCallback>, _ body: () throws -> T) throws -> T {
    guard let outer = callbacks.first else { return try body() }
    return try outer.scope { try nest(callbacks.dropFirst(), body) }
  }

  /// Tells every callback, in order.
  public func each(_ tell: (any TrainingCallback) throws -> Void) throws {
    for callback in all { try tell(callback) }
  }

  /// Whether any callback acts after update `step` (`TrainingCallback.readsMetrics`).
  public func readMetrics(at step: Int, in loop: TrainingLoop) -> Bool { all.contains { $0.readsMetrics(at: step, in: loop) } }

  /// Tells every callback of an evaluation after `step` updates.
  public func evaluated(_ report: EvaluationReport, at step: Int) throws { try each { try $0.evaluated(report, at: step) } }
}

// MARK: - Loop

/// The training loop: a `Trainer` on batches from a `BatchSource` until `maxSteps` updates, telling
/// its callbacks of every update. What it computes depends only on the model, the options, the
/// precision and the batches; everything else (logs, evaluations, checkpoints, progress) is a
/// callback.
public final class TrainingLoop {
  /// The step, and the model, optimizer, options and loss scale it updates.
  public let trainer: Trainer
  /// The precision the model computes in and whether the loss is scaled.
  public let precision: PrecisionPolicy
  /// Told of every update; a callback that evaluates tells them of the report through this too.
  public let callbacks: TrainingCallbacks
  /// The update count the loop started at (a resumed checkpoint's step).
  public let firstStep: Int
  private let batches: any BatchSource
  private let backend: any Backend
  private let clock = ContinuousClock()
  private var start: ContinuousClock.Instant?

  /// A loop training `model` (on `backend`) with `optimizer` (fresh, or restored from a checkpoint)
  /// in `precision`; when it scales the loss, the scaler resumes from `lossScale` (a checkpoint's)
  /// or starts afresh.
  public init(
    model: UNet, optimizer: Adam, options: TrainingOptions, precision: PrecisionPolicy, lossScale: LossScaler.State? = nil,
    batches: any BatchSource, on backend: any Backend, callbacks: TrainingCallbacks
  ) {
    model.computeType = precision.computeType
    let scaler = precision.usesLossScaling ? lossScale.map { LossScaler().restored($0) } ?? LossScaler() : nil
    trainer = options.compile != nil
      ? CompiledTrainer(model: model, optimizer: optimizer, options: options, lossScaler: scaler)
      : Trainer(model: model, optimizer: optimizer, options: options, lossScaler: scaler)
    (self.precision, self.batches, self.backend, self.callbacks) = (precision, batches, backend, callbacks)
    firstStep = optimizer.step
  }

  /// The model trained.
  public var model: UNet { trainer.model }
  /// Adam, whose update count is the step.
  public var optimizer: Adam { trainer.optimizer }
  /// The hyper-parameters, `maxSteps` and `logEvery` among them.
  public var options: TrainingOptions { trainer.options }

  /// Seconds since `run` started (0 before).
  public var elapsedSeconds: Double { start.map { (clock.now - $0).seconds } ?? 0 }

  /// Trains to `options.maxSteps` updates, telling the callbacks as it goes.
  public func run() throws {
    start = clock.now
    try callbacks.each { try $0.trainingStarted(self) }
    try trainer.train(
      nextBatch: { _ in try batches.next().tensors(on: backend) }, readsAt: { callbacks.readMetrics(at: $0, in: self) }
    ) { step, metrics, window in
      // Every rank of a data-parallel run trains on its own batch: the run's rate is theirs summed.
      let ranks = trainer.reducer?.communicator.size ?? 1
      let rate = Double((step - firstStep) * options.batchSize * ranks) / max(elapsedSeconds, 1e-9)
      let event = StepEvent(step: step, maxSteps: options.maxSteps, metrics: metrics, window: window,
                            imagesPerSecond: rate, lossScaler: trainer.lossScaler)
      try callbacks.each { try $0.stepEnded(event, in: self) }
    }
    try callbacks.each { try $0.trainingEnded(self) }
  }
}
