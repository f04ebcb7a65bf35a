import Foundation
import SegCore
import SegNN

// MARK: - The whole step as one graph

/// On a backend that captures graphs and updates every parameter in one `multiTensorAdam` (a
/// GPU), the compiled step is one program: forward, loss, gradients and the fused update, whose
/// inputs are the batch, the training state (`StepState`), the weights and Adam's moments and
/// whose outputs are the new state, weights and moments. It is captured as one graph at its
/// first replay and launched whole afterwards: per step one graph launch, one upload of the step
/// scalars, a copy of the batch into the graph's input buffers, and no host read: the loss
/// scale the backward pass is seeded with, the scaler's skip, Adam's bias correction and the
/// step's losses are the state's, which the host reads when it wants to (`readStep`). The state,
/// weights and moments are carried: the multi-tensor Adam writes them over the graph's input
/// buffers (in place, so the graph copies nothing back), and the host never copies them.
/// Step scalars: the dropout seed and the learning rate, read by the kernels from device memory.
/// In mixed precision the forward pass reads half copies of the weights that are carried too:
/// the update writes them beside the f32 weights (as apex's multi-tensor Adam does) and reads
/// the half gradients, unscaling them itself, so no weight or gradient is cast in the step.
extension CompiledTrainer {
  /// Whether the step runs as one captured program here.
  func capturesWholeStep(_ backend: any Backend, _ params: [Parameter]) -> Bool {
    guard reducer == nil, let capturing = backend as? any GraphCapturingBackend, capturing.capturesGraphs,
      backend.multiTensorOptimizer, optimizer.usesFusedUpdate, params.allSatisfy({ $0.value.dtype == .f32 })
    else { return false }
    return true
  }

  /// `Trainer.queueStep`'s fused path from the captured program.
  func queueCapturedStep(images: Tensor, targets: Tensor, params: [Parameter]) throws {
    let n = params.count
    let half: DType? = model.computeType == .f16 || model.computeType == .bf16 ? model.computeType : nil
    if wholeStep == nil {
      let compile = options.compile ?? CompileOptions()
      // Outputs state, p, m, v (and the half copies) carry into inputs state, p, m, v (and h).
      let carried = (0..<(half == nil ? 3 : 4) * n + 1).map { (output: $0, input: 2 + $0) }
      // The forward values are kept, not made again: the graph runs the eager step's kernels and
      // library calls, one for one.
      let passes = CompilerPasses.standard.filter { !($0 is RecomputeCheapValues) }
      wholeStep = CompiledFunction(
        "step", strict: compile.strict, passes: passes, dumpDirectory: compile.dumpDirectory, capture: CaptureOptions(carried: carried)
      ) { [unowned self] in try self.tracedStep($0, $1) }
    }
    let function = wholeStep!
    let zeros = { (t: Tensor) in try Tensor(repeating: 0, shape: t.shape, dtype: t.dtype, on: t.backend) }
    let moments = try params.map { p in try optimizer.moments[p.name] ?? (zeros(p.value), zeros(p.value)) }
    var halves: [Tensor] = []
    if let half {
      if let h = halfWeights, zip(params, h.madeFrom).allSatisfy({ $0.value.node === $1 }) {
        halves = h.copies
      } else {
        halves = try params.map { try cast($0.value, to: half) }
      }
    }
    let state = try currentDeviceState(on: images.backend)
    let inputs = [images, targets, state] + params.map(\.value) + moments.map(\.0) + moments.map(\.1) + halves
    let scalars: StepScalars = [
      UNet.dropoutSeedScalar: .bits(CounterRandom.mix(options.seed ^ CounterRandom.mix(UInt64(optimizer.step + unreadSteps)))),
      Adam.learningRateScalar: .real(optimizer.learningRate),
    ]
    let variant = "whole \(lossScaler == nil ? "unscaled" : "scaled") \(model.computeType)"
    let traces = function.traceCount
    let out = try function(inputs, scalars: scalars, variant: variant)
    if half != nil {
      halfWeights = (Array(out[(1 + 3 * n)...]), params.indices.map { out[1 + $0].node })
    }
    if function.traceCount > traces {
      try expectBindings(function, inputs, variant, Adam.learningRateScalar, count: 1, kind: .multiTensorAdam)
      try expectBindings(function, inputs, variant, UNet.dropoutSeedScalar, count: model.config.dropout > 0 ? 1 : 0, kind: .randomMask)
    }
    // A skipped step's outputs are its inputs unchanged, so the new tensors are right either way.
    var newMoments: [String: (m: Tensor, v: Tensor)] = [:]
    for (i, p) in params.enumerated() {
      p.value = out[1 + i]
      newMoments[p.name] = (out[1 + n + i], out[1 + 2 * n + i])
    }
    optimizer.restore(step: optimizer.step, moments: newMoments)
    queued(out[0])
  }

  /// Forward, loss, gradients and the fused update, as `Trainer.queueStep`'s fused path builds
  /// them; inputs images, targets, the state, then n weights, n m, n v (and in mixed precision n
  /// half weights); outputs the new state, n weights, n m, n v (and n half weights).
  private func tracedStep(_ inputs: [Tensor], _ scalars: StepScalars) throws -> [Tensor] {
    guard case .bits(let dropoutSeed)? = scalars[UNet.dropoutSeedScalar], case .real(let learningRate)? = scalars[Adam.learningRateScalar] else {
      preconditionFailure("the step program takes its dropout seed and learning rate")
    }
    let n = model.parameters.count
    let (images, targets, state) = (inputs[0], inputs[1], inputs[2])
    let weights = Array(inputs[3..<3 + n]), m = Array(inputs[3 + n..<3 + 2 * n]), v = Array(inputs[3 + 2 * n..<3 + 3 * n])
    let halves = Array(inputs[(3 + 3 * n)...])
    // The layers cast each weight to the compute type; a half copy already has it (no op), so the
    // forward pass reads the copies and the gradients come out in half precision.
    let differentiated = halves.isEmpty ? weights : halves
    let saved = model.parameters.map(\.value)
    for (p, h) in zip(model.parameters, halves) { p.value = h }
    defer { for (p, w) in zip(model.parameters, saved) { p.value = w } }
    let logits = try model(images, dropoutSeed: dropoutSeed)
    let parts = try segmentationLoss(logits: logits, targets: targets)
    let loss = try parts.total
    let seed = try lossScaler == nil ? nil : lossScaleSeed(state, like: loss)
    let grads = try gradients(of: loss, wrt: differentiated, seed: seed)
    let hyper = AdamHyperparameters(learningRate: learningRate, beta1: optimizer.beta1, beta2: optimizer.beta2, epsilon: optimizer.epsilon)
    let r = try withoutGradients {
      try markingStepScalar(Adam.learningRateScalar, .multiAdamLearningRate) {
        try multiTensorAdam(
          crossEntropy: parts.crossEntropy, dice: parts.dice, state: state, parameters: weights, m: m, v: v, gradients: grads, hyper,
          weightDecay: self.options.weightDecay, growthInterval: self.lossScaler?.growthInterval ?? 0, halfCopy: halves.first?.dtype)
      }
    }
    return [r.state] + r.parameters + r.m + r.v + r.halves
  }
}
