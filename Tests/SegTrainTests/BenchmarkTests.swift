import Foundation
import SegCore
import SegNN
import SegTrain
import Testing

// MARK: - Benchmark

@Suite struct BenchmarkTests {
  @Test func defaultModelCostMatchesTheReference() {
    // REFERENCE.md: 157.3 G multiply-adds forward at 572x572, 8% of them in the transposed convs.
    let macs = Double(UNetConfig().forwardMACs)
    #expect(abs(macs - 157.3e9) / 157.3e9 < 0.005, "\(macs)")
  }

  @Test func tinyModelCostByHand() {
    // Same padding, depth 1, 2 base filters, 4x4 input, 2x2 upconv:
    // encoder 16*9*1*2 + 16*9*2*2, bottleneck 4*9*2*4 + 4*9*4*4, upconv 4*(2*2)*4*2,
    // decoder 16*9*4*2 + 16*9*2*2, head 16*2*2.
    var c = UNetConfig()
    (c.padding, c.depth, c.baseFilters, c.inputSize, c.upconvKernel) = (.same, 1, 2, 4, 2)
    #expect(c.forwardMACs == 288 + 576 + 288 + 576 + 128 + 1152 + 576 + 64)
    // Valid padding, 20x20 input, 3x3 upconv: sides 18, 16 | 6, 4 | upconv on 4x4 -> 8 | 6, 4 | head 4.
    (c.padding, c.inputSize, c.upconvKernel) = (.valid, 20, 3)
    #expect(c.outputSize == 4)
    #expect(c.forwardMACs == 324 * 9 * 2 + 256 * 9 * 4 + 36 * 9 * 8 + 16 * 9 * 16 + 16 * 9 * 8 + 36 * 9 * 8 + 16 * 9 * 4 + 16 * 4)
  }

  @Test func nearestRankPercentiles() {
    let values: [Double] = [40, 15, 50, 35, 20]
    #expect(Benchmark.percentile(0, of: values) == 15)
    #expect(Benchmark.percentile(30, of: values) == 20)
    #expect(Benchmark.percentile(40, of: values) == 20)
    #expect(Benchmark.percentile(50, of: values) == 35)
    #expect(Benchmark.percentile(90, of: values) == 50)
    #expect(Benchmark.percentile(100, of: values) == 50)
    let ten = (1...10).map(Double.init).shuffled()
    #expect(Benchmark.percentile(50, of: ten) == 5)
    #expect(Benchmark.percentile(90, of: ten) == 9)
    #expect(Benchmark.percentile(95, of: ten) == 10)
    #expect(Benchmark.percentile(99, of: ten) == 10)
    #expect(Benchmark.percentile(50, of: []) == 0)
  }

  @Test(arguments: BenchmarkMode.allCases) func runTimesTheSteps(mode: BenchmarkMode) throws {
    var c = UNetConfig()
    (c.padding, c.depth, c.baseFilters, c.inputSize) = (.same, 1, 2, 8)
    var options = BenchmarkOptions()
    (options.mode, options.batchSize, options.warmupSteps, options.steps) = (mode, 2, 1, 4)
    let profiler = OpProfiler()
    let r = try Benchmark.run(config: c, options: options, backend: ReferenceBackend.shared, profiler: profiler)
    #expect(r.stepSeconds.count == 3 && r.stepSeconds.allSatisfy { $0 > 0 })
    let mean = r.stepSeconds.map { 2 / $0 }.reduce(0, +) / 3
    #expect(abs(r.throughput - mean) <= 1e-9 * mean)
    #expect(abs(r.throughputOverall - 6 / r.stepSeconds.reduce(0, +)) <= 1e-9 * r.throughputOverall)
    #expect(r.latencyMS(percentile: 99) == 1000 * r.stepSeconds.max()!)
    #expect(r.flopsPerStep == Double(2 * c.forwardMACs * 2 * (mode == .train ? 3 : 1)))
    #expect(r.gflopsPerSecond > 0 && r.peakRSSMB > 0)
    #expect(r.logData.keys.sorted() == (mode == .train
      ? ["latency_train_90", "latency_train_95", "latency_train_99", "latency_train_mean", "throughput_train"]
      : ["latency_test_90", "latency_test_95", "latency_test_99", "latency_test_mean", "throughput_test"]))
    // The warm-up counts within the 4 steps, as the reference's, and only the 3 timed steps are
    // profiled: a forward pass has 7 convs (2 encoder, 2 bottleneck, 2 decoder, head), so 3
    // predict steps make 21 conv2d calls (28 if the warm-up counted).
    let convCalls = profiler.ranked.first { $0.kind == .conv2d }?.entry.calls ?? 0
    if mode == .predict { #expect(convCalls == 21) } else { #expect(convCalls > 21) }
    // The same calls, split by output type: one row per conv layer's output.
    let convRows = profiler.rankedByOutput.filter { $0.op.hasPrefix("conv2d f32[") }
    #expect(convRows.map(\.entry.calls).reduce(0, +) == convCalls)
    #expect(convRows.count >= 2, "\(convRows.map(\.op))")
    #expect(profiler.detailTable(count: 3).split(separator: "\n").count == 4)
  }

  @Test func badCountsNameTheSetting() {
    var options = BenchmarkOptions()
    options.steps = 0
    #expect(throws: SettingError.self) { try options.validate() }
    do { try options.validate() } catch { #expect((error as? SettingError)?.setting == .maxSteps) }
    options.steps = options.warmupSteps
    do { try options.validate() } catch {
      #expect((error as? SettingError).map { $0.setting == .maxSteps && $0.reason.settings == [.warmupSteps, .maxSteps] } == true)
    }
    #expect(throws: SettingError.self) { try options.validate() }
  }
}
