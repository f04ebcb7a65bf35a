import Foundation
import SegCheck
import SegCore
import SegNN
import SegTrain
import Testing

@testable import SegCUDA

// MARK: - The training state on the device

/// The fused step decides the loss scaler's skip and counts Adam's updates on the device
/// (`StepState`): a queued step reads nothing, and the state read after many steps is the
/// reference's, which decides each step on the host.
@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct DeviceStateTests {
  /// An eager and a compiled (captured) fp16 step on the null device: no host read when queued,
  /// one when its metrics are asked for.
  @Test func aQueuedStepReadsNothing() throws {
    for compiled in [false, true] {
      let device = RecordingDevice(wrapping: nil)
      let (trainer, backend) = try CapturedStepFixture.trainer(compiled: compiled, initialScale: 0x1p15, batch: 2, device: device)
      let (images, targets) = try CapturedStepFixture.batch(StepCount.small(), 2, on: backend)
      for _ in 0..<3 { try trainer.queueStep(images: images, targets: targets) }
      device.reset()
      try trainer.queueStep(images: images, targets: targets)
      let queued = device.counts
      print(StepCount.json("small f16 \(compiled ? "compiled" : "eager") queued", queued))
      #expect(queued.downloads == 0, "\(compiled ? "compiled" : "eager")")
      #expect(compiled ? queued.graphLaunches == 1 : queued.launches > 0)
      device.reset()
      _ = try trainer.readStep()
      #expect(device.counts.downloads == 1)
    }
  }

  /// Twenty steps queued without a read, from a scale at which f16 overflows (2^24) and with a growth
  /// interval of 3 (the scale halves, grows and may halve again), eager and captured on the
  /// emulator, against the reference backend deciding every step on the host: the same scaler
  /// state and Adam count, the same last losses; eager and captured the same weights.
  @Test func queuedStepsDecideAsTheReference() throws {
    let emulator = try HostEmulator.shared.get()
    // Without dropout: the reference seeds each step's masks by its applied count, a queued step
    // by the host's count of steps taken as applied, which differ after a skip until a read.
    var config = StepCount.small()
    config.dropout = 0
    var results: [(state: LossScaler.State, step: Int, losses: StepMetrics, weights: [[Double]])] = []
    for run in ["eager", "captured", "reference"] {
      let device = RecordingDevice(wrapping: emulator)
      let backend: any Backend = run == "reference" ? ReferenceBackend.shared : CUDABackend(device: device, convolutions: HostConvolutions(computes: true))
      var options = TrainingOptions()
      (options.batchSize, options.learningRate) = (1, 1e-3)
      let trainer = try Self.trainer(run, config, on: backend, options, LossScaler(initialScale: 0x1p24, growthInterval: 3))
      let (images, targets) = try CapturedStepFixture.batch(config, 1, on: backend)
      device.reset()
      for _ in 0..<20 { try trainer.queueStep(images: images, targets: targets) }
      if run != "reference" { #expect(device.counts.downloads == 0, "\(run): 20 queued steps read the device") }
      let last = try trainer.readStep()
      let weights = try trainer.model.parameters.map { try $0.value.host().doubles }
      results.append((try #require(trainer.lossScaler).state, trainer.optimizer.step, last, weights))
    }
    let (eager, captured, reference) = (results[0], results[1], results[2])
    print("after 20 steps: eager \(eager.state) step \(eager.step); captured \(captured.state) step \(captured.step); reference \(reference.state) step \(reference.step)")
    #expect(reference.state.skippedSteps > 0 && reference.step > 0, "the scale must overflow f16 at first, then steps apply")
    #expect(eager.state == reference.state && eager.step == reference.step)
    #expect(captured.state == reference.state && captured.step == reference.step)
    for r in [eager, captured] {
      #expect(r.losses.skipped == reference.losses.skipped)
      #expect(abs(r.losses.total - reference.losses.total) <= 1e-2 * abs(reference.losses.total), "\(r.losses) vs \(reference.losses)")
    }
    var worst = 0.0
    for (a, b) in zip(eager.weights, captured.weights) { for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) } }
    #expect(worst == 0, "eager and captured weights differ by up to \(worst)")
  }

  /// A checkpoint saved after unread steps keeps the device's scale and counts (the trainer reads
  /// them first), and a trainer restored from it goes on as the original does.
  @Test func aCheckpointKeepsTheDevicesScaleAndStep() throws {
    let emulator = try HostEmulator.shared.get()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("device-state-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let (a, backend) = try CapturedStepFixture.trainer(compiled: true, initialScale: 0x1p22, device: RecordingDevice(wrapping: emulator))
    let (images, targets) = try CapturedStepFixture.batch(StepCount.small(), 1, on: backend)
    for _ in 0..<14 { try a.queueStep(images: images, targets: targets) }
    try a.readDeviceState()
    let url = dir.appendingPathComponent("ckpt.safetensors")
    try Checkpoint(model: a.model, optimizer: a.optimizer, precision: "fp16", lossScale: a.lossScaler?.state).save(to: url)
    let saved = (try #require(a.lossScaler).state, a.optimizer.step)
    #expect(saved.0.skippedSteps > 0 && saved.1 == 14 - saved.0.skippedSteps)

    let loaded = try Checkpoint.load(from: url)
    let (b, other) = try CapturedStepFixture.trainer(compiled: true, initialScale: 0x1p22, device: RecordingDevice(wrapping: emulator))
    try loaded.apply(to: b.model, optimizer: b.optimizer)
    b.lossScaler = b.lossScaler?.restored(try #require(loaded.lossScale))
    #expect(b.lossScaler?.state == saved.0 && b.optimizer.step == saved.1)
    let (x, y) = try CapturedStepFixture.batch(StepCount.small(), 1, on: other)
    for _ in 0..<2 {
      try a.queueStep(images: images, targets: targets)
      try b.queueStep(images: x, targets: y)
    }
    let (ma, mb) = (try a.readStep(), try b.readStep())
    #expect(a.lossScaler?.state == b.lossScaler?.state && a.optimizer.step == b.optimizer.step)
    #expect(ma.total == mb.total, "\(ma) vs \(mb)")
  }

  /// The training loop reads the device once per logging window and where a callback acts (step
  /// 3 here; again after a read that finds fewer updates than the steps it queued), not once per
  /// step, tells each read update once, and logs what the reference logs reading every step: the
  /// same windows, means, scale and count.
  @Test func theLoopReadsOncePerWindow() throws {
    let emulator = try HostEmulator.shared.get()
    var config = StepCount.small()
    config.dropout = 0
    var runs: [(logs: [(Int, StepMetrics)], told: [Int], state: LossScaler.State, step: Int, reads: Int)] = []
    for run in ["eager", "captured", "reference"] {
      let device = RecordingDevice(wrapping: emulator)
      let backend: any Backend = run == "reference" ? ReferenceBackend.shared : CUDABackend(device: device, convolutions: HostConvolutions(computes: true))
      var options = TrainingOptions()
      (options.batchSize, options.learningRate, options.maxSteps, options.logEvery) = (1, 1e-3, 10, 5)
      let trainer = try Self.trainer(run, config, on: backend, options, LossScaler(initialScale: 0x1p21, growthInterval: 4))
      let (images, targets) = try CapturedStepFixture.batch(config, 1, on: backend)
      device.reset()
      var logs: [(Int, StepMetrics)] = []
      var told: [Int] = []
      try trainer.train(nextBatch: { _ in (images, targets) }, readsAt: { $0 == 3 }) { step, _, means in
        told.append(step)
        if let means { logs.append((step, means)) }
      }
      runs.append((logs, told, try #require(trainer.lossScaler).state, trainer.optimizer.step, device.counts.downloads))
    }
    let reference = runs[2]
    print("loop reads: eager \(runs[0].reads) (told \(runs[0].told)), captured \(runs[1].reads) for \(reference.step + reference.state.skippedSteps) steps; \(reference.state)")
    #expect(reference.state.skippedSteps > 0 && reference.step == 10)
    for r in runs[0...1] {
      #expect(r.state == reference.state && r.step == reference.step)
      #expect(r.reads >= 3 && r.reads <= 3 + reference.state.skippedSteps, "\(r.reads) reads")
      #expect(Set([3, 5, 10]).isSubset(of: r.told) && r.told == Array(Set(r.told)).sorted() && r.told.count < 10, "told \(r.told)")
      #expect(r.logs.map(\.0) == reference.logs.map(\.0) && r.logs.map(\.0) == [5, 10])
      for (a, b) in zip(r.logs, reference.logs) {
        #expect(a.1.steps == b.1.steps && abs(a.1.total - b.1.total) <= 1e-2 * abs(b.1.total), "\(a.1) vs \(b.1)")
      }
    }
  }

  /// The fp16 U-Net of `config` (seed 1) on `backend` and its trainer with Adam 1e-3: compiled for
  /// the "captured" run, eager otherwise.
  static func trainer(
    _ run: String, _ config: UNetConfig, on backend: any Backend, _ options: TrainingOptions, _ scaler: LossScaler
  ) throws -> Trainer {
    let model = try UNet(config: config, seed: 1, on: backend)
    model.computeType = .f16
    var options = options
    if run == "captured" { options.compile = CompileOptions(dumpDirectory: nil) }
    return run == "captured"
      ? CompiledTrainer(model: model, optimizer: Adam(learningRate: 1e-3), options: options, lossScaler: scaler)
      : Trainer(model: model, optimizer: Adam(learningRate: 1e-3), options: options, lossScaler: scaler)
  }
}
