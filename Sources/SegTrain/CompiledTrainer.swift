import Foundation
import SegCore
import SegNN

// MARK: - Options

/// How the training step is compiled (`--xla`, `--compile`).
public struct CompileOptions: Sendable {
  /// Where each program is printed before and after every pass (`--dump-graph`); nil prints
  /// nothing unless UNET_DUMP_GRAPH names a folder.
  public var dumpDirectory: URL?
  /// When true, a batch of other shapes than the first fails instead of tracing again.
  public var strict = false

  /// Options dumping to `dumpDirectory` (default: UNET_DUMP_GRAPH's folder), tracing again on new shapes.
  public init(dumpDirectory: URL? = GraphDump.environmentDirectory, strict: Bool = false) {
    (self.dumpDirectory, self.strict) = (dumpDirectory, strict)
  }
}

// MARK: - Compiled training step

/// `Trainer`'s step compiled (`--xla`, `--compile`): the same ops through the same kernels, so the
/// same bits, but traced once and replayed, with no graph built, no gradient walk and every value
/// let go at its planned last use. Where the whole step is not captured as one graph
/// (`CapturedStep.swift`), it is three programs, because the loss scaler decides on the host
/// whether to update, and so that each parameter's old state goes as its new one comes:
/// - gradients: images, targets, the weights (and the loss scale's seed) to the cross-entropy, the
///   Dice loss, the gradients (and their finite check's sum);
/// - penalty: the weights to the L2 penalty;
/// - update, per parameter (one trace per shape): weight, gradient, m, v to the new three.
/// The dropout seed, Adam's step size and the loss scale's inverse change per step: they are step
/// scalars, never constants, and a trace that does not bind each where expected is refused.
public final class CompiledTrainer: Trainer {
  /// The step scalar the loss scale's inverse is marked as where the gradients are unscaled.
  public static let inverseScaleScalar = "inverseScale"

  private var gradientStep: CompiledFunction!
  private var penaltyStep: CompiledFunction!
  private var updateStep: CompiledFunction!
  /// The whole step as one captured program, on a backend that captures graphs (`CapturedStep.swift`).
  var wholeStep: CompiledFunction?
  /// The weights' half copies the whole step reads in mixed precision (written by its optimizer
  /// update), and the weight tensors they were made from: a weight replaced from outside (a
  /// checkpoint) is cast again.
  var halfWeights: (copies: [Tensor], madeFrom: [Node])?

  /// A compiled trainer of `model` with `optimizer`, scaling the loss with `lossScaler` when given,
  /// compiled as `options.compile` says (defaults when nil).
  public override init(model: UNet, optimizer: Adam, options: TrainingOptions, lossScaler: LossScaler? = nil) {
    super.init(model: model, optimizer: optimizer, options: options, lossScaler: lossScaler)
    let compile = options.compile ?? CompileOptions()
    // The gradients are let go by the end of the step: they take the arena's bytes of the
    // activations dead by the time each is made instead of 124 MB of their own at 572x572.
    gradientStep = CompiledFunction(
      "gradients", strict: compile.strict, dumpDirectory: compile.dumpDirectory, outputsInArena: true
    ) { [unowned self] in
      try self.tracedGradients($0, $1)
    }
    penaltyStep = CompiledFunction("penalty", strict: compile.strict, dumpDirectory: compile.dumpDirectory) { [unowned self] weights, _ in
      try self.tracedPenalty(weights)
    }
    // One trace per parameter shape: the shapes never change, so strictness does not apply. The
    // weight and its moments are replaced by the update, the weight as the parameter's value and
    // the moments as the trainer's own: the new ones are written over the old (108 MiB less at the
    // update of the largest 572x572 layer). A tensor taken from a parameter before a step thus
    // holds the new values after it; a copy to keep is taken with `host()`, as checkpoints do.
    updateStep = CompiledFunction("update", dumpDirectory: compile.dumpDirectory, donated: [(0, 0), (1, 2), (2, 3)]) { [unowned self] in
      try self.tracedUpdate($0, $1)
    }
  }

  /// The programs traced so far (the gradients' and the update's, per input types and variant).
  public var programs: [Program] {
    gradientStep.allPrograms + penaltyStep.allPrograms + updateStep.allPrograms + (wholeStep?.allPrograms ?? [])
  }

  /// How many times a program was traced (a replayed step traces nothing).
  public var traceCount: Int { gradientStep.traceCount + penaltyStep.traceCount + updateStep.traceCount + (wholeStep?.traceCount ?? 0) }

  // MARK: Step

  /// `Trainer.queueStep`, from the compiled programs (traced on the first call for these shapes).
  public override func queueStep(images: Tensor, targets: Tensor) throws {
    let params = model.parameters
    if capturesWholeStep(images.backend, params) { return try queueCapturedStep(images: images, targets: targets, params: params) }
    let (crossEntropy, dice, dataGradients, finiteSum) = try runGradients(images: images, targets: targets, params: params)

    var scale = 1.0
    if var scaler = lossScaler {
      scale = scaler.scale
      let finite = try finiteSum!.item().isFinite
      let apply = try scaler.decide(gradientsFinite: finite, step: optimizer.step + 1, computeType: model.computeType)
      lossScaler = scaler
      if !apply {
        let ce = try crossEntropy.item(), d = try dice.item()
        lastMetrics = StepMetrics(crossEntropy: ce, dice: d, total: ce + d, skipped: true)
        return
      }
    }

    // The weights array lives only for this call: each old weight goes when the update replaces it.
    let penalty = try penaltyStep(params.map(\.value))[0].item()
    try update(params, gradients: dataGradients, scale: scale)
    let ce = try crossEntropy.item(), d = try dice.item()
    lastMetrics = StepMetrics(crossEntropy: ce, dice: d, total: ce + d + penalty)
  }

  /// Runs the gradients program: the cross-entropy, the Dice loss, the gradients and, under loss
  /// scaling, the sum whose finiteness says whether to update.
  private func runGradients(
    images: Tensor, targets: Tensor, params: [Parameter]
  ) throws -> (crossEntropy: Tensor, dice: Tensor, gradients: [Tensor], finiteSum: Tensor?) {
    let weights = params.map(\.value)
    let n = weights.count
    let dropoutSeed = CounterRandom.mix(options.seed ^ CounterRandom.mix(UInt64(optimizer.step)))
    var inputs = [images, targets] + weights
    if let scaler = lossScaler {
      inputs.append(try Tensor(repeating: scaler.scale, shape: [], dtype: weights[0].dtype, on: images.backend))
    }
    let traces = gradientStep.traceCount
    let variant = "\(lossScaler == nil ? "unscaled" : "scaled") \(model.computeType)"
    let out = try gradientStep(inputs, scalars: [UNet.dropoutSeedScalar: .bits(dropoutSeed)], variant: variant)
    if gradientStep.traceCount > traces {
      try expectBindings(gradientStep, inputs, variant, UNet.dropoutSeedScalar, count: model.config.dropout > 0 ? 1 : 0, kind: .randomMask)
    }
    return (out[0], out[1], Array(out[2..<2 + n]), lossScaler == nil ? nil : out[2 + n])
  }

  /// Runs the update program parameter by parameter, storing each parameter's new weights and
  /// moments before the next is updated, so that, as in the eager step, old and new state coexist
  /// for one parameter at a time.
  private func update(_ params: [Parameter], gradients: [Tensor], scale: Double) throws {
    let step = optimizer.step
    // Adam's own step size for the coming update, as `Adam.update` computes it; the
    // binding check below fails if the two ever differ.
    let t = Double(step + 1)
    let stepSize = StepState.biasCorrectedStepSize(learningRate: optimizer.learningRate, beta1: optimizer.beta1, beta2: optimizer.beta2, t: t)
    var scalars: StepScalars = [Adam.stepSizeScalar: .real(stepSize)]
    if scale != 1 { scalars[Self.inverseScaleScalar] = .real(1 / scale) }
    let variant = "\(scale == 1 ? "plain" : "unscale") \(optimizer.usesFusedUpdate ? "fused" : "ops")"
    // Taken out of Adam, so that each old pair is let go as soon as its parameter is updated.
    var moments = optimizer.moments
    optimizer.restore(step: step, moments: [:])
    for (p, g) in zip(params, gradients) {
      let (m, v) = try moments[p.name] ?? (zeros(like: p.value), zeros(like: p.value))
      let inputs = [p.value, g, m, v]
      let traces = updateStep.traceCount
      let out = try updateStep(inputs, scalars: scalars, variant: variant)
      if updateStep.traceCount > traces {
        try expectBindings(updateStep, inputs, variant, Adam.stepSizeScalar, count: 1, kind: nil)
        try expectBindings(updateStep, inputs, variant, Self.inverseScaleScalar, count: scale == 1 ? 0 : 1, kind: .mulScalar)
      }
      p.value = out[0]
      moments[p.name] = (out[1], out[2])
    }
    optimizer.restore(step: step + 1, moments: moments)
  }

  // MARK: Traced bodies

  /// Forward, loss and gradients, as `Trainer.step` builds them.
  private func tracedGradients(_ inputs: [Tensor], _ scalars: StepScalars) throws -> [Tensor] {
    guard case .bits(let dropoutSeed)? = scalars[UNet.dropoutSeedScalar] else { preconditionFailure("the gradients program takes its dropout seed") }
    let n = model.parameters.count
    let (images, targets) = (inputs[0], inputs[1])
    let weights = Array(inputs[2..<2 + n])
    let seed = inputs.count > 2 + n ? inputs[2 + n] : nil
    let logits = try model(images, dropoutSeed: dropoutSeed)
    let parts = try segmentationLoss(logits: logits, targets: targets)
    let grads = try gradients(of: try parts.total, wrt: weights, seed: seed)
    var outputs = [parts.crossEntropy, parts.dice] + grads
    // `LossScaler.allFinite`'s sum, left on the device until the host reads it.
    if seed != nil {
      outputs.append(try withoutGradients {
        var total = try sum(grads[0])
        for g in grads.dropFirst() { total = try total + sum(g) }
        return total
      })
    }
    return outputs
  }

  /// The reference's L2 term over every weight, as `Trainer.step` computes it.
  private func tracedPenalty(_ weights: [Tensor]) throws -> [Tensor] {
    [try withoutGradients { try l2Penalty(weights, weightDecay: options.weightDecay) }]
  }

  /// One parameter's unscaling, weight decay and Adam update, as `Trainer.step` and `Adam.update`
  /// run them: inputs weight, gradient, m, v; outputs the new weight, m and v.
  private func tracedUpdate(_ inputs: [Tensor], _ scalars: StepScalars) throws -> [Tensor] {
    let (w, g) = (inputs[0], inputs[1])
    let inverse: Double? = if case .real(let r)? = scalars[Self.inverseScaleScalar] { r } else { nil }
    let decayed = try withoutGradients {
      let unscaled = try inverse.map { r in try markingStepScalar(Self.inverseScaleScalar, .mulScalar) { try g * r } } ?? g
      return try unscaled + w * options.weightDecay
    }
    // A stand-in parameter: Adam updates it, and its moments, as it would the model's.
    let p = Parameter("traced", w)
    let step = optimizer.step
    optimizer.restore(step: step, moments: [p.name: (inputs[2], inputs[3])])
    defer { optimizer.restore(step: step, moments: [:]) }
    try optimizer.update([p], gradients: [decayed])
    let (m, v) = optimizer.moments[p.name]!
    return [p.value, m, v]
  }

  // MARK: Checks

  /// Refuses a trace in which step scalar `name` is not bound to exactly `count` ops (of `kind`
  /// when given): a per-step number baked in as a constant would silently repeat its first value.
  func expectBindings(
    _ function: CompiledFunction, _ inputs: [Tensor], _ variant: String, _ name: String, count: Int, kind: OpKind?
  ) throws {
    guard let program = function.program(for: inputs.map(\.type), variant: variant, on: inputs[0].backend) else { return }
    let bound = program.instructions.filter { ins in
      ins.bindings.contains { $0.scalar == name } && (kind == nil || ins.op.kind == kind)
    }.count
    guard bound == count else {
      throw TensorError(
        op: "compile",
        "the \(function.name) program binds the step scalar \"\(name)\" to \(bound) ops, not \(count): it would replay a per-step value as a constant; train without --xla")
    }
  }

  private func zeros(like t: Tensor) throws -> Tensor {
    try Tensor(repeating: 0, shape: t.shape, dtype: t.dtype, on: t.backend)
  }
}
