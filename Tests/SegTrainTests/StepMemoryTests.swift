import Foundation
import SegCPU
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

// MARK: - The estimate against the CPU backend's measured peak

@Suite(.serialized) struct StepMemoryTests {
  static func config(depth: Int, baseFilters: Int, inputSize: Int) -> UNetConfig {
    var c = UNetConfig()
    (c.depth, c.baseFilters, c.inputSize, c.padding) = (depth, baseFilters, inputSize, .same)
    return c
  }

  /// The measured peak of two training steps on the CPU backend, with no freed buffers kept for
  /// reuse (so that the peak is what the step holds, not what earlier tests left in the pool).
  static func measuredPeak(_ config: UNetConfig, batch: Int) throws -> Int {
    let backend = CPUBackend.shared
    let model = try UNet(config: config, seed: 1, on: backend)
    let trainer = Trainer(model: model, optimizer: Adam(learningRate: 1e-3), options: TrainingOptions())
    let slices = SyntheticEM.generate(count: 2, size: config.inputSize * 2, seed: 3)
    let batches = try (0..<2).map { i -> (Tensor, Tensor) in
      let (x, y) = try pipelineBatch(slices, config: config, size: batch, seed: 5, step: i)
      return (try x.to(backend), try y.to(backend))
    }
    let limit = backend.recycledBufferLimit
    backend.recycledBufferLimit = 0
    defer { backend.recycledBufferLimit = limit }
    backend.resetPeakMemory()
    for (x, y) in batches { _ = try trainer.step(images: x, targets: y) }
    return try #require(backend.peakMemoryBytes)
  }

  @Test(arguments: [(2, 8, 64, 4), (3, 8, 64, 2), (2, 16, 96, 2), (1, 4, 128, 8)])
  func estimateIsWithinAFactorOfTwoOfTheCPUPeak(depth: Int, filters: Int, size: Int, batch: Int) throws {
    let c = StepMemoryTests.config(depth: depth, baseFilters: filters, inputSize: size)
    let measured = try StepMemoryTests.measuredPeak(c, batch: batch)
    // The workspace is a fixed allowance for big models; the small ones measured here have none.
    let estimate = StepMemory(config: c, batchSize: batch).bytes - (64 << 20)
    let ratio = Double(measured) / Double(estimate)
    print("step memory: depth \(depth) filters \(filters) size \(size) batch \(batch): measured \(measured), estimate \(estimate), ratio \(ratio)")
    #expect(ratio > 0.5 && ratio < 2, "measured \(measured) bytes, estimated \(estimate)")
  }
}
