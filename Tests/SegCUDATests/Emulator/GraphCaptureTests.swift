import Foundation
import SegCheck
import SegCore
import SegNN
import SegTrain
import Testing

@testable import SegCUDA

// MARK: - Setting up a compiled step on a recording device

/// Trainers of a tiny U-Net on the CUDA backend over a recording device (in front of the
/// emulator, or the null device), with the host stand-in for cuDNN.
enum CapturedStepFixture {
  /// A trainer of `config` (compiled when `compiled`) with fp16 convolutions and loss scaling
  /// from `initialScale`, a learning-rate warm-up over the first steps, on `device`.
  static func trainer(
    compiled: Bool, config: UNetConfig = StepCount.small(), computeType: DType = .f16, initialScale: Double = 0x1p40,
    batch: Int = 1, maxSteps: Int = 5, device: RecordingDevice
  ) throws -> (Trainer, CUDABackend) {
    let backend = CUDABackend(device: device, convolutions: HostConvolutions(computes: device.runsWork))
    let model = try UNet(config: config, seed: 1, on: backend)
    model.computeType = computeType
    var options = TrainingOptions()
    (options.batchSize, options.learningRate, options.maxSkippedStepsInARow) = (batch, 1e-3, 100)
    options.learningRateWarmupSteps = 3
    options.maxSteps = maxSteps
    if compiled { options.compile = CompileOptions(dumpDirectory: nil) }
    let scaler = computeType == .f16 ? LossScaler(initialScale: initialScale) : nil
    let adam = Adam(learningRate: 1e-3)
    let trainer = compiled
      ? CompiledTrainer(model: model, optimizer: adam, options: options, lossScaler: scaler)
      : Trainer(model: model, optimizer: adam, options: options, lossScaler: scaler)
    return (trainer, backend)
  }

  /// A batch of `batch` images of `config` (seeded noise) and targets (stripes).
  static func batch(_ config: UNetConfig, _ batch: Int, on backend: any Backend) throws -> (Tensor, Tensor) {
    let s = config.inputSize, o = config.outputSize
    let images = try Tensor(randomHost(TensorType([batch, s, s, config.inputChannels], .f32), seed: 4), on: backend)
    let onehot: [Float] = (0..<(batch * o * o)).flatMap { i -> [Float] in (i / 7) % 2 == 0 ? [1, 0] : [0, 1] }
    return (images, try Tensor(shape: [batch, o, o, 2], floats: onehot, on: backend))
  }

  /// The captured program of a compiled trainer's whole step, if it made one.
  static func capture(_ trainer: Trainer) -> ProgramCapture? {
    (trainer as? CompiledTrainer)?.programs.compactMap(\.capture).first
  }
}

// MARK: - Tests

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct GraphCaptureTests {
  /// The precondition of replaying a captured graph: the compiled step, run again on the same
  /// inputs, asks the device for the same launches: names, work items, every argument's bytes, and
  /// addresses that are the same or, for buffers the allocator handed out afresh (outputs, scratch),
  /// renamed one to one. Planned values sit at the same arena offsets every time. So a graph recorded
  /// from one replay, which keeps the buffers it names, is what every later replay would run.
  @Test func twoTracedStepsLaunchTheSame() throws {
    let device = RecordingDevice(wrapping: nil)
    let backend = CUDABackend(device: device, convolutions: HostConvolutions(computes: false))
    let config = StepCount.small()
    let model = try UNet(config: config, seed: 1, on: backend)
    let (images, targets) = try CapturedStepFixture.batch(config, 2, on: backend)
    let weights = model.parameters.map(\.value)
    let step = CompiledFunction("gradients", dumpDirectory: nil) { inputs, _ in
      let logits = try model(inputs[0], dropoutSeed: 7)
      let loss = try segmentationLoss(logits: logits, targets: inputs[1]).total
      return [loss] + (try gradients(of: loss, wrt: Array(inputs[2...])))
    }
    var logs: [[LaunchRecord]] = []
    for _ in 0..<3 {
      device.logsRequests = true
      device.reset()
      _ = try step([images, targets] + weights, scalars: [UNet.dropoutSeedScalar: .bits(7)])
      logs.append(device.launchLog)
    }
    #expect(step.traceCount == 1)
    #expect(logs[1].count > 20 && logs[1].contains { $0.name.hasPrefix("cudnn") })
    #expect(logs[1].count == logs[2].count)
    // Addresses renamed in the order they first appear, the same renaming for both steps.
    var renaming: [[UInt8]: [UInt8]] = [:], used: Set<[UInt8]> = []
    var same = 0, renamed = 0
    for (k, (a, b)) in zip(logs[1], logs[2]).enumerated() {
      guard a.name == b.name, a.count == b.count, a.addressArguments == b.addressArguments, a.arguments.count == b.arguments.count else {
        Issue.record("launch \(k): \(a.name)[\(a.count)] vs \(b.name)[\(b.count)]")
        return
      }
      for (i, (x, y)) in zip(a.arguments, b.arguments).enumerated() {
        guard a.addressArguments.contains(i) else {
          if x != y { Issue.record("launch \(k) \(a.name): argument \(i) differs") }
          continue
        }
        if let r = renaming[x] {
          if r != y { Issue.record("launch \(k) \(a.name): argument \(i) names another buffer than before") }
        } else {
          if used.contains(y) { Issue.record("launch \(k) \(a.name): two buffers of one step are one of the other's") }
          (renaming[x], used) = (y, used.union([y]))
          if x == y { same += 1 } else { renamed += 1 }
        }
      }
    }
    print("two replays: \(logs[1].count) launches alike; \(same) buffers at the same address, \(renamed) renamed one to one")
    #expect(same > 0)
  }

  /// The compiled fp16 step captured and replayed as one graph on the emulator equals the eager
  /// step for several steps while the step scalars change: a learning-rate warm-up (Adam's step
  /// size), a loss scale that overflows f16 at first (steps skipped on the device, the scale and
  /// its inverse halved) and the dropout seed.
  @Test func capturedStepEqualsEager() throws {
    let emulator = try HostEmulator.shared.get()
    var config = StepCount.small()
    config.dropout = 0.5
    var runs: [(losses: [Double], skipped: Int, weights: [[Double]])] = []
    var capture: ProgramCapture?
    for compiled in [false, true] {
      let device = RecordingDevice(wrapping: emulator)
      let (trainer, backend) = try CapturedStepFixture.trainer(compiled: compiled, config: config, device: device)
      let (images, targets) = try CapturedStepFixture.batch(config, 1, on: backend)
      var losses: [Double] = []
      try trainer.train(nextBatch: { _ in (images, targets) }) { _, m, _ in losses.append(m.total) }
      let weights = try trainer.model.parameters.map { try $0.value.host().doubles }
      runs.append((losses, try #require(trainer.lossScaler).skippedSteps, weights))
      if compiled { capture = CapturedStepFixture.capture(trainer) }
    }
    let (eager, captured) = (runs[0], runs[1])
    let graph = try #require(capture, "the compiled step made no captured program")
    #expect(graph.refusal == nil, "\(graph.refusal.map(String.init(describing:)) ?? "")")
    print("captured: \(graph.launches) graph launches; losses eager \(eager.losses), captured \(captured.losses), skipped \(eager.skipped)/\(captured.skipped)")
    #expect(graph.launches >= 4, "every step after the traced one is a graph launch")
    #expect(eager.skipped > 0, "the initial scale must overflow f16")
    #expect(eager.skipped == captured.skipped && eager.losses.count == captured.losses.count)
    for (a, b) in zip(eager.losses, captured.losses) { #expect(abs(a - b) <= 1e-5 * max(abs(a), 1e-12), "\(a) vs \(b)") }
    var worst = 0.0
    for (a, b) in zip(eager.weights, captured.weights) { for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) } }
    #expect(worst == 0, "weights differ by up to \(worst)")
  }

  /// From the host, a captured step is one graph launch, one upload (the step scalars) and the
  /// batch's two copies into the graph's buffers: no kernel launch, no library call of its own
  /// and no read (the state the step leaves is read when its metrics are asked for).
  @Test func capturedStepIsOneHostLaunch() throws {
    let device = RecordingDevice(wrapping: nil)
    let (trainer, backend) = try CapturedStepFixture.trainer(compiled: true, device: device)
    // A new batch every step, as in training (the same batch again would not be copied).
    var batches = try (0..<5).map { _ in try CapturedStepFixture.batch(StepCount.small(), 2, on: backend) }
    for _ in 0..<3 {
      let (images, targets) = batches.removeFirst()
      _ = try trainer.step(images: images, targets: targets)
    }
    let (images, targets) = batches.removeFirst()
    device.reset()
    try trainer.queueStep(images: images, targets: targets)
    let c = device.counts
    print(StepCount.json("captured small f16", c) + " graph launches \(c.graphLaunches), work in the graph \(c.graphNodes)")
    #expect(c.graphLaunches == 1 && c.launches == 0 && c.libraryCalls == 0)
    #expect(c.uploads == 1 && c.downloads == 0 && c.copies == 2 && c.fills == 0)
    #expect(c.graphNodes > 20)
    // `--profile` says the step was one graph launch, with the work in its graph.
    let profiler = OpProfiler()
    let (x, y) = batches.removeFirst()
    try OpProfiler.record(into: profiler) { _ = try trainer.step(images: x, targets: y) }
    #expect(profiler.graphLaunches.calls == 1 && profiler.graphNodes == c.graphNodes)
    #expect(profiler.table().contains("graph launch"), "\(profiler.table())")
  }

  /// The full-size fp16 step at batch 8 (572x572) on the null device: the work inside its graph,
  /// by kernel, against the eager step's launches (fewer: fused chains are one kernel each), its
  /// copies (the batch's, none back into the weights), and at most 130 kernel launches.
  @Test func fullSizeCapturedStepCounts() throws {
    let eager = try StepCount.secondStep(config: UNetConfig(), batch: 8, computeType: .f16, device: RecordingDevice(wrapping: nil))
    let device = RecordingDevice(wrapping: nil)
    let (trainer, backend) = try CapturedStepFixture.trainer(compiled: true, config: UNetConfig(), initialScale: 0x1p15, batch: 8, device: device)
    let config = UNetConfig()
    let images = try Tensor(repeating: 0.25, shape: [8, config.inputSize, config.inputSize, config.inputChannels], on: backend)
    let targets = try Tensor(repeating: 0.5, shape: [8, config.outputSize, config.outputSize, 2], on: backend)
    for _ in 0..<2 { try trainer.queueStep(images: images, targets: targets) }
    device.reset()
    try trainer.queueStep(images: images, targets: targets)
    let capture = try #require(CapturedStepFixture.capture(trainer))
    let graph = try #require(capture.graph as? RecordedGraph)
    let byName = graph.launchesByName
    let kernels = byName.filter { !$0.key.hasPrefix("cudnn") }.values.reduce(0, +)
    let library = byName.filter { $0.key.hasPrefix("cudnn") }.values.reduce(0, +)
    print("572x572 batch 8 f16 captured: \(graph.nodeCount) pieces of work in the graph (\(kernels) kernel launches, \(library) cuDNN calls); eager: \(eager.launches) launches, \(eager.libraryCalls) cuDNN calls, \(eager.copies) copies")
    var copies = 0, fills = 0, uploads = 0
    for r in graph.requests {
      switch r {
      case .copy: copies += 1
      case .fill: fills += 1
      case .upload: uploads += 1
      default: break
      }
    }
    print("  copies \(copies), fills \(fills), uploads \(uploads)")
    for (name, n) in byName.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) { print("  \(name): \(n)") }
    print("  host: \(StepCount.json("captured", device.counts))")
    #expect(device.counts.graphLaunches == 1 && device.counts.launches == 0 && device.counts.downloads == 0)
    #expect(library == eager.libraryCalls)
    #expect(kernels <= eager.launches + 2, "the graph holds the eager step's kernels (the loss-scale seed is one more)")
    // Fused elementwise chains are one generated kernel each, and the optimizer updates the
    // weights and moments in place: no copy back into the carried buffers.
    #expect(byName.keys.contains { $0.hasPrefix("fused_") } && kernels < eager.launches)
    #expect(copies <= 10 && fills == 0 && uploads <= 1)
    // The forward pass reads the half copies the update wrote, and the update reads the half
    // gradients: no weight or gradient is cast (what is left: the batch and the loss terms).
    let params = trainer.model.parameters.count
    #expect(byName["cast_f32_f16", default: 0] < params / 4 && byName["cast_f16_f32", default: 0] < params / 4)
    // Filters stay OHWI (no reorder around a convolution), each bias gradient is one launch, each
    // skip connection is one launch forward, and its encoder's gradient (pool, skip, sum and ReLU)
    // one more beside the slice of the upsampled path's; the whole step's kernel launches (cuDNN's
    // calls not counted) stay within 130 (150 before the skip connection was one op each way, 134
    // before its encoder's gradient was one).
    let biases = trainer.model.parameters.filter { $0.value.shape.rank == 1 }.count
    #expect(byName.filter { $0.key.hasPrefix("sumRows") }.values.reduce(0, +) >= biases)
    #expect(byName.filter { $0.key.hasPrefix("sumPartial") || $0.key.hasPrefix("sumFinish") }.values.reduce(0, +) <= 4)
    #expect(byName["cropConcat_b2"] == 4 && byName["skipGradient_f16"] == 4 && byName["cropConcatBackward_b2"] == nil)
    #expect(byName["maxPool2dBackward_f16"] == nil)
    #expect(kernels <= 130, "\(kernels) kernel launches in the captured step")
  }
}
