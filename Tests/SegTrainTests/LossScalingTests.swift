import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

// MARK: - The scaler's state machine

@Suite struct LossScalerTests {
  @Test func defaultsAreTheReferences() {
    let s = LossScaler()
    #expect(s.scale == 32768 && s.growthInterval == 2000 && s.goodSteps == 0 && s.skippedSteps == 0)
  }

  @Test func doublesAfterTheIntervalOfFiniteSteps() {
    var s = LossScaler(initialScale: 8, growthInterval: 3)
    let first = s.update(gradientsFinite: true), second = s.update(gradientsFinite: true)
    #expect(first && second)
    #expect(s.scale == 8 && s.goodSteps == 2)
    let third = s.update(gradientsFinite: true)
    #expect(third)
    #expect(s.scale == 16 && s.goodSteps == 0 && s.skippedSteps == 0)
    for _ in 0..<3 { _ = s.update(gradientsFinite: true) }
    #expect(s.scale == 32)
  }

  @Test func aNonFiniteStepIsSkippedHalvesAndRestartsTheCount() {
    var s = LossScaler(initialScale: 8, growthInterval: 3)
    _ = s.update(gradientsFinite: true)
    _ = s.update(gradientsFinite: true)
    let applied = s.update(gradientsFinite: false)
    #expect(!applied)
    #expect(s.scale == 4 && s.goodSteps == 0 && s.skippedSteps == 1)
    // Growth needs a full interval again after the skip.
    _ = s.update(gradientsFinite: true)
    _ = s.update(gradientsFinite: true)
    #expect(s.scale == 4)
    _ = s.update(gradientsFinite: true)
    #expect(s.scale == 8 && s.skippedSteps == 1)
  }

  @Test func theScaleStaysWithinOneAndF32sRange() {
    var low = LossScaler(initialScale: 2, growthInterval: 5)
    for _ in 0..<3 {
      let applied = low.update(gradientsFinite: false)
      #expect(!applied)
    }
    #expect(low.scale == 1 && low.skippedSteps == 3)
    var high = LossScaler(initialScale: 0x1p127, growthInterval: 1)
    let applied = high.update(gradientsFinite: true)
    #expect(applied)
    #expect(high.scale == 0x1p127 && high.goodSteps == 0)
  }

  @Test func stateRoundTrips() {
    var s = LossScaler(initialScale: 64, growthInterval: 4)
    _ = s.update(gradientsFinite: false)
    _ = s.update(gradientsFinite: true)
    let restored = LossScaler(initialScale: 1, growthInterval: 4).restored(s.state)
    #expect(restored == s)
    #expect(s.state == LossScaler.State(scale: 32, goodSteps: 1, skippedSteps: 1))
  }

  @Test func allFiniteSeesInfAndNaNAnywhere() throws {
    let b = ReferenceBackend.shared
    let a = try Tensor(shape: [3], floats: [1, -2, 3e38], on: b)
    let c = try Tensor(shape: [2, 2], floats: [0, 1, 2, 3], on: b)
    #expect(try LossScaler.allFinite([a, c]))
    #expect(try LossScaler.allFinite([]))
    for bad: Float in [.infinity, -.infinity, .nan] {
      let t = try Tensor(shape: [2, 2], floats: [0, 1, bad, 3], on: b)
      #expect(try !LossScaler.allFinite([a, t]), "\(bad)")
    }
    // inf in one tensor and -inf in another do not cancel.
    let plus = try Tensor(shape: [1], floats: [.infinity], on: b), minus = try Tensor(shape: [1], floats: [-.infinity], on: b)
    #expect(try !LossScaler.allFinite([plus, minus]))
  }
}

// MARK: - Loss scaling in training

@Suite struct LossScaledTrainingTests {
  static func config(dropout: Double = 0.5) -> UNetConfig {
    var c = UNetConfig()
    (c.baseFilters, c.depth, c.padding, c.inputSize, c.dropout) = (2, 1, .same, 8, dropout)
    return c
  }

  static func trainer(computeType: DType = .f32, scaler: LossScaler?, maxSteps: Int = 3) throws -> Trainer {
    var options = TrainingOptions()
    (options.learningRate, options.maxSteps, options.logEvery) = (1e-2, maxSteps, 1)
    let model = try UNet(config: config(), seed: 3, on: ReferenceBackend.shared)
    model.computeType = computeType
    return Trainer(model: model, optimizer: Adam(learningRate: options.learningRate), options: options, lossScaler: scaler)
  }

  static func batch(_ step: Int) throws -> (Tensor, Tensor) {
    try pipelineBatch(SyntheticEM.generate(count: 2, size: 16, seed: 3), config: config(), size: 2, seed: 5, step: step)
  }

  /// Weights, Adam's moments (as "m/<name>", "v/<name>") and Adam's step.
  static func state(_ t: Trainer) throws -> ([String: HostTensor], Int) {
    var out: [String: HostTensor] = [:]
    for p in t.model.parameters { out[p.name] = try p.value.host() }
    for (name, mv) in t.optimizer.moments {
      out["m/" + name] = try mv.m.host()
      out["v/" + name] = try mv.v.host()
    }
    return (out, t.optimizer.step)
  }

  @Test func scaledStepsEqualUnscaledOnesWhenNothingOverflows() throws {
    let plain = try Self.trainer(scaler: nil)
    let scaled = try Self.trainer(scaler: LossScaler())
    var logged: [(Double, Double)] = []
    for step in 0..<3 {
      let (x, y) = try Self.batch(step)
      let a = try plain.step(images: x, targets: y), b = try scaled.step(images: x, targets: y)
      #expect(!b.skipped)
      logged.append((a.total, b.total))
    }
    let (p, pStep) = try Self.state(plain), (s, sStep) = try Self.state(scaled)
    #expect(pStep == 3 && sStep == 3 && p.count == s.count)
    var largest = 0.0
    for (name, t) in p {
      let u = try #require(s[name])
      largest = max(largest, zip(t.doubles, u.doubles).map { abs($0 - $1) }.max() ?? 0)
    }
    // Scaling by 2^15 and unscaling by 2^-15 are exact in f32, so the updates are the same bits.
    print("loss scaling: largest difference over weights and moments after 3 steps: \(largest)")
    expectSame(p, s)
    #expect(logged.allSatisfy { $0.0 == $0.1 }, "\(logged)")
    #expect(scaled.lossScaler?.goodSteps == 3 && scaled.lossScaler?.skippedSteps == 0)
  }

  @Test func anF16GradientOverflowSkipsTheStepAndHalvesTheScale() throws {
    // f16 compute on the reference backend: the loss's cotangent reaches the head's f16 output
    // as scale * (p - t) / pixels, which at 2^30 is far beyond f16's 65504.
    let t = try Self.trainer(computeType: .f16, scaler: LossScaler(initialScale: 1024, growthInterval: 2000))
    for step in 0..<2 {
      let (x, y) = try Self.batch(step)
      #expect(try !t.step(images: x, targets: y).skipped)
    }
    let before = try Self.state(t)
    #expect(before.1 == 2 && before.0.keys.contains { $0.hasPrefix("m/") })
    t.lossScaler = t.lossScaler!.restored(LossScaler.State(scale: 0x1p30, goodSteps: 2, skippedSteps: 0))
    let (x, y) = try Self.batch(2)
    let m = try t.step(images: x, targets: y)
    #expect(m.skipped)
    let after = try Self.state(t)
    expectSame(before.0, after.0)
    #expect(after.1 == 2, "Adam's step count must not advance")
    #expect(t.lossScaler == LossScaler(initialScale: 0x1p29).restored(LossScaler.State(scale: 0x1p29, goodSteps: 0, skippedSteps: 1)))

    // The loop retries the same batch at halved scales until the gradients fit, then goes on.
    var logged: [Int] = []
    var batches: [Int] = []
    var options = t.options
    options.maxSteps = 4
    let loop = Trainer(model: t.model, optimizer: t.optimizer, options: options, lossScaler: t.lossScaler)
    try loop.train(nextBatch: { step in batches.append(step); return try Self.batch(step) }, log: { step, _ in logged.append(step) })
    let scaler = try #require(loop.lossScaler)
    #expect(loop.optimizer.step == 4 && logged == [3, 4] && batches == [2, 3])
    #expect(scaler.skippedSteps > 1 && scaler.scale < 0x1p29, "\(scaler)")
    print("f16 overflow: \(scaler.skippedSteps) steps skipped in all, scale now 2^\(Int(log2(scaler.scale)))")
  }

  @Test func aNaNBatchEndsTheRunAtTheMinimumScale() throws {
    let t = try Self.trainer(scaler: LossScaler(initialScale: 8, growthInterval: 2000))
    let (x, y) = try Self.batch(0)
    var values = try x.floats()
    values[5] = .nan
    let bad = try Tensor(shape: x.shape, floats: values, on: x.backend)
    let before = try Self.state(t)
    #expect { try t.train(nextBatch: { _ in (bad, y) }, log: { _, _ in }) } throws: { error in
      (error as? SettingError)?.setting == .precision && "\(error)".contains("inf or NaN") && "\(error)".contains("loss scale 1")
    }
    // 8 -> 4 -> 2 -> 1: three skips, then the fourth at scale 1 throws.
    #expect(t.lossScaler?.skippedSteps == 3 && t.lossScaler?.scale == 1)
    let after = try Self.state(t)
    expectSame(before.0, after.0)
    #expect(after.1 == 0)
  }
}

// MARK: - Checkpoints and runs

@Suite struct LossScaleCheckpointTests {
  @Test func theScaleRoundTripsAndOldFilesHaveNone() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = try LossScaledTrainingTests.trainer(scaler: nil)
    let url = dir.appendingPathComponent("c.safetensors")
    let state = LossScaler.State(scale: 0x1p14, goodSteps: 17, skippedSteps: 3)
    try Checkpoint(model: t.model, optimizer: t.optimizer, precision: "fp16", lossScale: state).save(to: url)
    let loaded = try Checkpoint.load(from: url)
    #expect(loaded.lossScale == state && loaded.precision == "fp16")

    try Checkpoint(model: t.model, optimizer: t.optimizer).save(to: url)
    #expect(try Checkpoint.load(from: url).lossScale == nil)

    // A damaged value names the file and the key.
    var (tensors, metadata) = try SafeTensors.read(from: url)
    metadata["loss_scale"] = "0.25"
    metadata["loss_scale.good_steps"] = "1"
    metadata["loss_scale.skipped_steps"] = "0"
    try SafeTensors.write(tensors, metadata: metadata, to: url)
    expectFileError(url, "\"loss_scale\"") { _ = try Checkpoint.load(from: url) }
    metadata["loss_scale"] = "1024.0"
    metadata["loss_scale.good_steps"] = nil
    try SafeTensors.write(tensors, metadata: metadata, to: url)
    expectFileError(url, "loss_scale.good_steps") { _ = try Checkpoint.load(from: url) }
  }

  static func settings(_ dir: URL, steps: Int, precision: Precision) -> RunSettings {
    var s = RunSettings()
    s.mode = .train
    s.modelDir = dir
    s.model = LossScaledTrainingTests.config()
    (s.syntheticSlices, s.syntheticSize, s.syntheticTestSlices) = (2, 16, 0)
    (s.training.batchSize, s.training.maxSteps, s.training.logEvery, s.workers) = (1, steps, 1, 0)
    s.precision = precision
    return s
  }

  /// The settings' precision resolved for the reference backend.
  static func policy(_ s: RunSettings) -> PrecisionPolicy { PrecisionPolicy(s.precision, on: ReferenceBackend.shared) }

  @Test func anFP16RunSavesTheScaleAndResumesFromIt() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let log = dir.appendingPathComponent("log.json")
    var s = Self.settings(dir, steps: 2, precision: .fp16)
    s.logFile = log
    var said: [String] = []
    try Runner(settings: s, backend: ReferenceBackend.shared, precision: Self.policy(s), say: { said.append($0) }).run()
    let first = try Checkpoint.load(from: try #require(s.checkpointURL))
    #expect(first.precision == "fp16" && first.lossScale == LossScaler.State(scale: 32768, goodSteps: 2, skippedSteps: 0))
    #expect(said.contains { $0.hasPrefix("step 2:") && $0.contains("loss_scale 32768, skipped_steps 0") }, "\(said)")
    let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
    #expect(lines.contains { $0.contains("\"loss_scale\": 32768.0") && $0.contains("\"skipped_steps\": 0") }, "\(lines)")
    #expect(lines.first?.contains("\"compute_precision\": \"fp16\"") == true)

    s.training.maxSteps = 3
    s.resume = true
    try Runner(settings: s, backend: ReferenceBackend.shared, precision: Self.policy(s), say: { _ in }).run()
    #expect(try Checkpoint.load(from: s.checkpointURL!).lossScale == LossScaler.State(scale: 32768, goodSteps: 3, skippedSteps: 0))

    // An fp32 run keeps no scale and logs none.
    let plain = dir.appendingPathComponent("fp32")
    said = []
    let fp32 = Self.settings(plain, steps: 1, precision: .fp32)
    try Runner(settings: fp32, backend: ReferenceBackend.shared, precision: Self.policy(fp32), say: { said.append($0) }).run()
    #expect(try Checkpoint.load(from: plain.appendingPathComponent("checkpoint.safetensors")).lossScale == nil)
    #expect(!said.contains { $0.contains("loss_scale") })
  }

  @Test func aBackendWithoutHalfConvolutionsSaysSoOnce() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    var said: [String] = []
    let settings = Self.settings(dir, steps: 1, precision: .bf16), backend = NoHalfBackend()
    let runner = Runner(settings: settings, backend: backend, precision: PrecisionPolicy(.bf16, on: backend), say: { said.append($0) })
    #expect(runner.precision.computeType == .f32 && !runner.precision.usesLossScaling)
    try runner.run()
    #expect(said.filter { $0.contains("no half-precision convolutions") }.count == 1, "\(said)")
    #expect(try Checkpoint.load(from: dir.appendingPathComponent("checkpoint.safetensors")).precision == "bf16")
  }
}

/// The reference backend's kernels under another name, declaring no half-precision convolutions
/// (as the CPU backend).
final class NoHalfBackend: Backend {
  let name = "no-half"
  func upload(_ host: HostTensor) throws -> any DeviceStorage { try ReferenceBackend.shared.upload(host) }
  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    try ReferenceBackend.shared.download(storage, type: type)
  }
  var kernels: KernelTable { ReferenceBackend.shared.kernels }
}
