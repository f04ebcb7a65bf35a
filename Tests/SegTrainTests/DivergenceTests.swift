import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

// MARK: - Divergence stops the run

@Suite struct DivergenceTests {
  static func trainer(learningRate: Double, scaler: LossScaler? = nil, steps: Int = 10) throws -> Trainer {
    var options = TrainingOptions()
    (options.learningRate, options.maxSteps) = (learningRate, steps)
    return Trainer(
      model: try UNet(config: CheckpointTests.tinyConfig(), seed: 1, on: ReferenceBackend.shared),
      optimizer: Adam(learningRate: learningRate), options: options, lossScaler: scaler)
  }

  @Test func aNonFiniteLossStopsTheRunNamingTheStepAndALowerRate() throws {
    let t = try DivergenceTests.trainer(learningRate: 1e6)
    var steps: [Int] = []
    let error = #expect(throws: (any Error).self) {
      try t.train(nextBatch: { try CheckpointTests.batch($0) }) { step, _, _ in steps.append(step) }
    }
    let text = "\(error.map { "\($0)" } ?? "")"
    #expect(text.contains("diverged") && text.contains("at step \(t.optimizer.step)") && text.contains("lower"), "\(text)")
    #expect(t.optimizer.step < 10 && steps.count == t.optimizer.step - 1)
  }

  @Test func twentyLossScaledSkipsInARowAreDivergenceToo() throws {
    // A scale that halving takes 40 skips to bring to 1: the minimum-scale error cannot come first.
    let t = try DivergenceTests.trainer(learningRate: 1e-3, scaler: LossScaler(initialScale: 0x1p40))
    let (x, y) = try CheckpointTests.batch(0)
    let nan = try Tensor(HostTensor(type: x.type, doubles: [Double](repeating: .nan, count: x.type.shape.count)), on: x.backend)
    let error = #expect(throws: (any Error).self) {
      try t.train(nextBatch: { _ in (nan, y) }) { _, _, _ in }
    }
    #expect("\(error.map { "\($0)" } ?? "")".contains("20 loss-scaled steps in a row"))
    #expect(t.lossScaler?.skippedSteps == Divergence.defaultMaxSkippedStepsInARow && t.optimizer.step == 0)
  }

  @Test func aCheckpointWithNaNWeightsIsNeverWritten() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = try DivergenceTests.trainer(learningRate: 1e-3)
    let url = dir.appendingPathComponent("checkpoint.safetensors")
    try Checkpoint(model: t.model, optimizer: t.optimizer).save(to: url)
    let good = try Data(contentsOf: url)
    let p = t.model.parameters[0]
    p.value = try Tensor(HostTensor(type: p.value.type, doubles: [Double](repeating: .nan, count: p.value.type.shape.count)), on: p.value.backend)
    #expect(throws: (any Error).self) { try Checkpoint(model: t.model, optimizer: t.optimizer).save(to: url) }
    #expect(try Data(contentsOf: url) == good)
  }

  @Test func aCheckpointWithNaNWeightsIsRefusedWhenLoaded() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = try DivergenceTests.trainer(learningRate: 1e-3)
    let url = dir.appendingPathComponent("checkpoint.safetensors")
    try Checkpoint(model: t.model, optimizer: t.optimizer).save(to: url)
    // The same file with one weight turned NaN, written past Checkpoint.save's own check.
    var (tensors, metadata) = try SafeTensors.read(from: url)
    let name = try #require(tensors.keys.sorted().first)
    let type = tensors[name]!.type
    tensors[name] = HostTensor(type: type, doubles: [Double](repeating: .infinity, count: type.shape.count))
    try SafeTensors.write(tensors, metadata: metadata, to: url)
    let error = #expect(throws: (any Error).self) { _ = try Checkpoint.load(from: url) }
    #expect("\(error.map { "\($0)" } ?? "")".contains("inf or NaN"))
  }
}

// MARK: - Names, memory

@Suite struct ReliabilityPartsTests {
  @Test func outputNamesNeverCollide() {
    let files = ["/x/a.png", "/x/a.tif", "/x/b.png", "/y/b.png", "/y/c.tiff"].map { URL(fileURLWithPath: $0) }
    let names = PredictionWriter.outputNames(files)
    #expect(names == ["a.png", "a.tif", "b.png-1", "b.png-2", "c"])
    #expect(Set(names).count == names.count)
  }

  @Test func memAvailableIsReadInBytes() {
    let text = "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n"
    #expect(AvailableMemory.parseMemAvailable(text) == 8_192_000 * 1024)
    #expect(AvailableMemory.parseMemAvailable("MemTotal: 1 kB\n") == nil)
    #expect(AvailableMemory.host().map { $0 > 0 } ?? true)
  }

  @Test func aStepThatCannotFitNamesTheBatchWhatIsAvailableAndTheLargestBatch() throws {
    var c = UNetConfig()
    (c.depth, c.baseFilters, c.inputSize, c.padding) = (2, 8, 64, .same)
    let m = StepMemory(config: c, batchSize: 1_000_000)
    let available = 2 << 30
    let largest = m.largestBatch(fitting: available)
    #expect(largest > 0 && StepMemory(config: c, batchSize: largest).bytes <= available
      && StepMemory(config: c, batchSize: largest + 1).bytes > available)
    let error = #expect(throws: SettingError.self) { try m.check(available: available, what: "test memory") }
    #expect(error?.setting == .batchSize && "\(error!)".contains("largest batch that fits is about \(largest)") && "\(error!)".contains("2.0 GiB of test memory"))
    try StepMemory(config: c, batchSize: 1).check(available: available, what: "test memory")
  }
}
