import Foundation
import SegCheck
import SegCore
import SegNN
import SegTrain
import Testing

@testable import SegCUDA

// MARK: - What a training step asks of the device

/// A U-Net training step of the CUDA backend, counted by a `RecordingDevice`: kernel launches,
/// cuDNN calls, copies, fills, uploads and host reads (downloads, each a synchronisation).
enum StepCount {
  /// The counts of the second step (the first also creates Adam's moments) of `config` at `batch`
  /// with convolutions in `computeType` (loss scaling for f16), on `device` (the null device or a
  /// recorder in front of the emulator), queued as a step between two logging steps is: its
  /// metrics not asked for.
  static func secondStep(config: UNetConfig, batch: Int, computeType: DType, device: RecordingDevice) throws -> RecordingDevice.Counts {
    let (trainer, images, targets) = try setUp(config: config, batch: batch, computeType: computeType, device: device)
    try trainer.queueStep(images: images, targets: targets)
    device.reset()
    try trainer.queueStep(images: images, targets: targets)
    return device.counts
  }

  /// A trainer of `config` on the CUDA backend over `device`, and a constant batch of `batch`.
  static func setUp(
    config: UNetConfig, batch: Int, computeType: DType, device: RecordingDevice, convolutions: HostConvolutions? = nil
  ) throws -> (Trainer, Tensor, Tensor) {
    let backend = CUDABackend(device: device, convolutions: convolutions ?? HostConvolutions(computes: device.runsWork))
    let model = try UNet(config: config, seed: 1, on: backend)
    model.computeType = computeType
    var options = TrainingOptions()
    (options.batchSize, options.learningRate) = (batch, 1e-3)
    let trainer = Trainer(
      model: model, optimizer: Adam(learningRate: 1e-3), options: options, lossScaler: computeType == .f16 ? LossScaler() : nil)
    let s = config.inputSize, o = config.outputSize
    let images = try Tensor(repeating: 0.25, shape: [batch, s, s, config.inputChannels], on: backend)
    var onehot = [Float](repeating: 0, count: batch * o * o * 2)
    for i in stride(from: 0, to: onehot.count, by: 2) { onehot[i + (i / 2) % 2] = 1 }
    let targets = try Tensor(shape: [batch, o, o, 2], floats: onehot, on: backend)
    return (trainer, images, targets)
  }

  /// The counts as one line of JSON, for the test log.
  static func json(_ name: String, _ c: RecordingDevice.Counts) -> String {
    "{\"step\": \"\(name)\", \"launches\": \(c.launches), \"cudnn\": \(c.libraryCalls), \"copies\": \(c.copies), "
      + "\"fills\": \(c.fills), \"uploads\": \(c.uploads), \"downloads\": \(c.downloads), \"allocations\": \(c.allocations)}"
  }

  /// A small valid-padded U-Net that the emulator trains in a moment.
  static func small(depth: Int = 2) -> UNetConfig {
    var c = UNetConfig()
    (c.depth, c.baseFilters) = (depth, 4)
    c.inputSize = (44...120).first { c.geometry(input: $0) != nil }!
    return c
  }
}

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct StepCountTests {
  /// The null device records what the emulator would run: the same counts for the same step,
  /// since nothing the backend decides on the host depends on the values (the loss scaler
  /// decides on the device).
  @Test func nullDeviceCountsWhatTheEmulatorRuns() throws {
    let emulator = try HostEmulator.shared.get()
    for dtype in [DType.f32, .f16] {
      let run = try StepCount.secondStep(config: StepCount.small(), batch: 2, computeType: dtype, device: RecordingDevice(wrapping: emulator))
      let null = try StepCount.secondStep(config: StepCount.small(), batch: 2, computeType: dtype, device: RecordingDevice(wrapping: nil))
      print(StepCount.json("small \(dtype) emulator", run))
      #expect(run == null, "\(dtype)")
      #expect(run.libraryCalls > 0 && run.launches > run.libraryCalls)
    }
  }

  /// The full-size step (572x572, depth 4, 64 filters) at batch 8 in fp16 on the null device:
  /// the counts it reports, and how they grow with the model's depth.
  @Test func fullSizeStepCounts() throws {
    let full = try StepCount.secondStep(config: UNetConfig(), batch: 8, computeType: .f16, device: RecordingDevice(wrapping: nil))
    print(StepCount.json("572x572 depth 4 batch 8 f16", full))
    for (name, n) in full.byName.sorted(by: { $0.value > $1.value }) { print("  \(name): \(n)") }
    // 23 convolutions forward, each with its data and filter gradients (the first has no data gradient).
    #expect(full.libraryCalls == 23 * 3 - 1)
    // No host read: the loss scaler and Adam's count are the device's (`StepState`), read when
    // the metrics are asked for.
    #expect(full.downloads == 0)
    // The optimizer step is three launches for the 46 parameters; 1,004 launches before it was fused.
    #expect(full.byName["multiAdam_f32"] == 1 && full.byName["adamStats_f32"] == 1 && full.byName["adam_f32"] == nil)
    // Each of the 4 skip connections is one launch forward and one backward (a crop, a concat's
    // two copies, two slices and a pad before: 269 launches in all).
    #expect(full.byName["cropConcat_b2"] == 4 && full.byName["cropConcatBackward_b2"] == 4)
    #expect(full.launches <= 253, "\(full.launches) launches")
  }

  /// The library's per-shape setups (cuDNN's descriptors and algorithm on a GPU) are made at a
  /// shape's first call only: the first full-size step makes one per distinct convolution, the
  /// next ones none, while every call still looks its setup up.
  @Test func convolutionSetupsAreMadeOncePerShape() throws {
    let device = RecordingDevice(wrapping: nil)
    let library = HostConvolutions(computes: false)
    let (trainer, images, targets) = try StepCount.setUp(
      config: UNetConfig(), batch: 8, computeType: .f16, device: device, convolutions: library)
    _ = try trainer.step(images: images, targets: targets)
    let first = (made: library.setups.made, lookups: library.setups.lookups)
    print("convolution setups: \(first.made) made in the first step's \(first.lookups) calls")
    #expect(first.made > 0 && first.made <= first.lookups)
    for step in 2...3 {
      device.reset()
      _ = try trainer.step(images: images, targets: targets)
      #expect(library.setups.made == first.made, "step \(step) made setups")
      #expect(library.setups.lookups == first.lookups * (step), "step \(step)")
      #expect(device.counts.libraryCalls == first.lookups)
    }
  }

  /// Loss scaling on the fused step: a scale at which the f16 gradients overflow is halved and the
  /// step skipped on the device (weights, moments and Adam's step unchanged) until they are finite,
  /// exactly as the reference backend's per-parameter path does it.
  @Test func fusedStepSkipsAsThePerParameterPathDoes() throws {
    let emulator = try HostEmulator.shared.get()
    let cuda = CUDABackend(device: emulator, convolutions: HostConvolutions(computes: true))
    var results: [(LossScaler.State, Int, [Double])] = []
    for backend in [cuda as any Backend, ReferenceBackend.shared] {
      let config = StepCount.small()
      let model = try UNet(config: config, seed: 1, on: backend)
      model.computeType = .f16
      var options = TrainingOptions()
      (options.batchSize, options.learningRate, options.maxSteps, options.maxSkippedStepsInARow) = (1, 1e-3, 2, 100)
      let trainer = Trainer(
        model: model, optimizer: Adam(learningRate: 1e-3), options: options, lossScaler: LossScaler(initialScale: 0x1p40))
      let s = config.inputSize, o = config.outputSize
      let images = try Tensor(randomHost(TensorType([1, s, s, 1], .f32), seed: 4), on: backend)
      let onehot: [Float] = (0..<(o * o)).flatMap { i -> [Float] in (i / 7) % 2 == 0 ? [1, 0] : [0, 1] }
      let targets = try Tensor(shape: [1, o, o, 2], floats: onehot, on: backend)
      var losses: [Double] = []
      try trainer.train(nextBatch: { _ in (images, targets) }) { _, m, _ in losses.append(m.total) }
      results.append((try #require(trainer.lossScaler).state, trainer.optimizer.step, losses))
    }
    let (fused, reference) = (results[0], results[1])
    print("fused: \(fused.0), step \(fused.1), losses \(fused.2); per-parameter: \(reference.0), losses \(reference.2)")
    #expect(fused.0.skippedSteps > 0, "the scale must overflow f16 at first")
    #expect(fused.0 == reference.0 && fused.1 == reference.1 && fused.1 == 2)
    for (a, b) in zip(fused.2, reference.2) { #expect(abs(a - b) <= 1e-2 * abs(b), "\(fused.2) vs \(reference.2)") }
  }

  /// The emulated backend with the host stand-in for cuDNN trains as the reference does (the
  /// training comparison of `unet doctor --check`, at its tolerance).
  @Test func emulatedTrainingTracksTheReference() throws {
    let emulator = try HostEmulator.shared.get()
    let backend = CUDABackend(device: emulator, convolutions: HostConvolutions(computes: true))
    var options = TrainingComparison.Options()
    options.steps = 4
    let report = TrainingComparison.run(candidate: backend, baseline: ReferenceBackend.shared, options: options)
    #expect(report.passed, "\(report.text)")
  }
}
