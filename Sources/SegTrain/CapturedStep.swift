import Foundation
import SegCore
import SegNN

// MARK: - The whole step as one graph

/// On a backend that captures graphs and updates every parameter in one `multiTensorAdam` (a
/// GPU), the compiled step is one program: forward, loss, gradients and the fused update, whose
/// inputs are the batch, the weights and Adam's moments and whose outputs are the update's
/// summary and the new weights and moments. It is captured as one graph at its first replay and
/// launched whole afterwards: per step one graph launch, one upload of the step scalars, a copy
/// of the batch into the graph's input buffers, and one read of the summary (the loss scaler
/// decides from its inf/NaN count, which the device already acted on). The weights and moments
/// are carried: the multi-tensor Adam writes them over the graph's input buffers (in place, so the
/// graph copies nothing back), and the host never copies them.
/// Step scalars: the dropout seed, the loss scale (the gradient seed, `ones * scale`), its
/// inverse and Adam's step size, read by the kernels from device memory.
/// In mixed precision the forward pass reads half copies of the weights that are carried too:
/// the update writes them beside the f32 weights (as apex's multi-tensor Adam does) and reads
/// the half gradients, unscaling them itself, so no weight or gradient is cast in the step.
extension CompiledTrainer {
  /// The step scalar of the loss scale the backward pass is seeded with.
  public static let lossScaleScalar = "lossScale"

  /// Whether the step runs as one captured program here.
  func capturesWholeStep(_ backend: any Backend, _ params: [Parameter]) -> Bool {
    guard reducer == nil, let capturing = backend as? any GraphCapturingBackend, capturing.capturesGraphs,
      backend.multiTensorOptimizer, optimizer.usesFusedUpdate, params.allSatisfy({ $0.value.dtype == .f32 })
    else { return false }
    return true
  }

  /// `Trainer.step`'s fused path from the captured program.
  func capturedStep(images: Tensor, targets: Tensor, params: [Parameter]) throws -> StepMetrics {
    let n = params.count
    let half: DType? = model.computeType == .f16 || model.computeType == .bf16 ? model.computeType : nil
    if wholeStep == nil {
      let compile = options.compile ?? CompileOptions()
      // Outputs summary, p, m, v (and the half copies) carry into inputs images, targets, p, m, v (and h).
      let carried = (0..<(half == nil ? 3 : 4) * n).map { (output: 1 + $0, input: 2 + $0) }
      wholeStep = CompiledFunction(
        "step", strict: compile.strict, dumpDirectory: compile.dumpDirectory, capture: CaptureOptions(carried: carried)
      ) { [unowned self] in try self.tracedStep($0, $1) }
    }
    let function = wholeStep!
    let zeros = { (t: Tensor) in try Tensor(repeating: 0, shape: t.shape, dtype: t.dtype, on: t.backend) }
    let state = try params.map { p in try optimizer.moments[p.name] ?? (zeros(p.value), zeros(p.value)) }
    var halves: [Tensor] = []
    if let half {
      if let h = halfWeights, zip(params, h.madeFrom).allSatisfy({ $0.value.node === $1 }) {
        halves = h.copies
      } else {
        halves = try params.map { try cast($0.value, to: half) }
      }
    }
    let inputs = [images, targets] + params.map(\.value) + state.map(\.0) + state.map(\.1) + halves
    let scale = lossScaler?.scale ?? 1
    let t = Double(optimizer.step + 1)
    let stepSize = optimizer.learningRate * (1 - pow(optimizer.beta2, t)).squareRoot() / (1 - pow(optimizer.beta1, t))
    var scalars: StepScalars = [
      UNet.dropoutSeedScalar: .bits(CounterRandom.mix(options.seed ^ CounterRandom.mix(UInt64(optimizer.step)))),
      Adam.stepSizeScalar: .real(stepSize),
    ]
    if lossScaler != nil {
      scalars[Self.lossScaleScalar] = .real(scale)
      scalars[Self.inverseScaleScalar] = .real(1 / scale)
    }
    let variant = "whole \(lossScaler == nil ? "unscaled" : "scaled") \(model.computeType)"
    let traces = function.traceCount
    let out = try function(inputs, scalars: scalars, variant: variant)
    if half != nil {
      halfWeights = (Array(out[(1 + 3 * n)...]), params.indices.map { out[1 + $0].node })
    }
    if function.traceCount > traces {
      try expectBindings(function, inputs, variant, Adam.stepSizeScalar, count: 1, kind: .multiTensorAdam)
      try expectBindings(function, inputs, variant, Self.inverseScaleScalar, count: lossScaler == nil ? 0 : 1, kind: .multiTensorAdam)
      try expectBindings(function, inputs, variant, Self.lossScaleScalar, count: lossScaler == nil ? 0 : 1, kind: .mulScalar)
      try expectBindings(function, inputs, variant, UNet.dropoutSeedScalar, count: model.config.dropout > 0 ? 1 : 0, kind: .randomMask)
    }
    // The step's one host read: losses, the L2 value and the inf/NaN count the device acted on.
    let s = try out[0].host().floats
    let (ce, dice, penalty, finite) = (Double(s[0]), Double(s[1]), Double(s[2]), s[3] == 0)
    if var scaler = lossScaler {
      let applied = try scaler.decide(gradientsFinite: finite, step: optimizer.step + 1, computeType: model.computeType)
      lossScaler = scaler
      if !applied { return StepMetrics(crossEntropy: ce, dice: dice, total: ce + dice, skipped: true) }
    }
    // A skipped step's outputs are its inputs unchanged, so the new tensors are right either way.
    var moments: [String: (m: Tensor, v: Tensor)] = [:]
    for (i, p) in params.enumerated() {
      p.value = out[1 + i]
      moments[p.name] = (out[1 + n + i], out[1 + 2 * n + i])
    }
    optimizer.restore(step: optimizer.step + 1, moments: moments)
    return StepMetrics(crossEntropy: ce, dice: dice, total: ce + dice + penalty)
  }

  /// Forward, loss, gradients and the fused update, as `Trainer.step`'s fused path builds them;
  /// inputs images, targets, then n weights, n m, n v (and in mixed precision n half weights);
  /// outputs the summary, n weights, n m, n v (and n half weights).
  private func tracedStep(_ inputs: [Tensor], _ scalars: StepScalars) throws -> [Tensor] {
    guard case .bits(let dropoutSeed)? = scalars[UNet.dropoutSeedScalar], case .real(let stepSize)? = scalars[Adam.stepSizeScalar] else {
      preconditionFailure("the step program takes its dropout seed and step size")
    }
    let n = model.parameters.count
    let (images, targets) = (inputs[0], inputs[1])
    let weights = Array(inputs[2..<2 + n]), m = Array(inputs[2 + n..<2 + 2 * n]), v = Array(inputs[2 + 2 * n..<2 + 3 * n])
    let halves = Array(inputs[(2 + 3 * n)...])
    // The layers cast each weight to the compute type; a half copy already has it (no op), so the
    // forward pass reads the copies and the gradients come out in half precision.
    let differentiated = halves.isEmpty ? weights : halves
    let saved = model.parameters.map(\.value)
    for (p, h) in zip(model.parameters, halves) { p.value = h }
    defer { for (p, w) in zip(model.parameters, saved) { p.value = w } }
    let logits = try model(images, dropoutSeed: dropoutSeed)
    let parts = try segmentationLoss(logits: logits, targets: targets)
    let loss = try parts.total
    var unscale = 1.0
    var seed: Tensor?
    if case .real(let scale)? = scalars[Self.lossScaleScalar] {
      unscale = 1 / scale
      let ones = try Tensor(repeating: 1, shape: loss.shape, dtype: loss.dtype, on: loss.backend)
      seed = try withoutGradients { try markingStepScalar(Self.lossScaleScalar, .mulScalar) { try ones * scale } }
    }
    let grads = try gradients(of: loss, wrt: differentiated, seed: seed)
    let constants = AdamConstants(beta1: optimizer.beta1, beta2: optimizer.beta2, epsilon: optimizer.epsilon, stepSize: stepSize)
    let update = {
      try markingStepScalar(Adam.stepSizeScalar, .multiAdamStepSize) {
        try multiTensorAdam(
          crossEntropy: parts.crossEntropy, dice: parts.dice, parameters: weights, m: m, v: v, gradients: grads, constants,
          unscale: unscale, weightDecay: self.options.weightDecay, skipNonFinite: self.lossScaler != nil,
          halfCopy: halves.first?.dtype)
      }
    }
    // Unscaled, the inverse is the constant 1 and not a step scalar.
    let r = try withoutGradients {
      try seed == nil ? update() : markingStepScalar(Self.inverseScaleScalar, .multiAdamUnscale, update)
    }
    return [r.summary] + r.parameters + r.m + r.v + r.halves
  }
}
