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

  static let cases = [(2, 8, 64, 4), (3, 8, 64, 2), (2, 16, 96, 2), (1, 4, 128, 8)]

  /// The estimate against the peak measured in a process of its own: the CPU backend's peak
  /// counts every tensor of the process, and other suites run at the same time in this one.
  @Test func estimateIsWithinAFactorOfTwoOfTheCPUPeak() throws {
    let measured = try StepMemoryChild.measureInChildProcess()
    #expect(measured.count == Self.cases.count, "the child measured \(measured.count) of \(Self.cases.count) cases")
    for ((depth, filters, size, batch), peak) in zip(Self.cases, measured) {
      let c = StepMemoryTests.config(depth: depth, baseFilters: filters, inputSize: size)
      // The workspace is a fixed allowance for big models; the small ones measured here have none.
      let estimate = StepMemory(config: c, batchSize: batch).bytes - (64 << 20)
      let ratio = Double(peak) / Double(estimate)
      print("step memory: depth \(depth) filters \(filters) size \(size) batch \(batch): measured \(peak), estimate \(estimate), ratio \(ratio)")
      #expect(ratio > 0.5 && ratio < 2, "depth \(depth) filters \(filters) size \(size) batch \(batch): measured \(peak) bytes, estimated \(estimate)")
    }
  }
}

// MARK: - The measuring process

/// Runs only in the process `measureInChildProcess` starts (the test program again, filtered to
/// this suite), where no other test allocates: measures every case's peak and writes them as JSON.
@Suite struct StepMemoryChild {
  static let resultVariable = "UNET_STEP_MEMORY_RESULT"
  static let resultPath = ProcessInfo.processInfo.environment[resultVariable]

  @Test(.enabled(if: resultPath != nil, "the step-memory measurement runs only in the process StepMemoryTests starts"))
  func measure() throws {
    let peaks = try StepMemoryTests.cases.map { depth, filters, size, batch in
      try StepMemoryTests.measuredPeak(StepMemoryTests.config(depth: depth, baseFilters: filters, inputSize: size), batch: batch)
    }
    try JSONEncoder().encode(peaks).write(to: URL(fileURLWithPath: Self.resultPath!))
  }

  /// Starts the test program filtered to this suite and returns the peaks it measured.
  static func measureInChildProcess() throws -> [Int] {
    let result = FileManager.default.temporaryDirectory.appendingPathComponent("step-memory-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: result) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    p.arguments = ["--testing-library", "swift-testing", "--filter", "StepMemoryChild"]
    var env = ProcessInfo.processInfo.environment
    env[resultVariable] = result.path
    p.environment = env
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0, let data = try? Data(contentsOf: result) else {
      throw TensorError(op: "step memory", "the measuring process ended with status \(p.terminationStatus) and no result")
    }
    return try JSONDecoder().decode([Int].self, from: data)
  }
}
