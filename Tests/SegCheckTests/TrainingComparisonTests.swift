import SegCPU
import SegCheck
import SegCore
import Testing

// MARK: - The training comparison

@Suite struct TrainingComparisonTests {
  /// A run small enough for the reference backend in a debug build.
  static var tiny: TrainingComparison.Options {
    var o = TrainingComparison.Options()
    o.depth = 1
    o.baseFilters = 4
    o.inputSize = 20
    o.batchSize = 1
    o.steps = 3
    return o
  }

  @Test func cpuTracksTheReference() throws {
    let report = TrainingComparison.run(candidate: CPUBackend.shared, baseline: ReferenceBackend.shared, options: Self.tiny)
    #expect(report.passed, "\(report.text)")
    #expect(report.candidateLosses.count == 3 && report.baselineLosses.count == 3)
    #expect(report.candidateLosses.allSatisfy { $0.isFinite })
    // The run trains: the loss moves between steps.
    #expect(Set(report.baselineLosses).count == 3)
    #expect(report.text.contains("Losses track"))
  }

  /// Convolutions 10% off everywhere: the losses part.
  @Test func aWrongConvolutionDoesNotTrack() throws {
    let report = TrainingComparison.run(candidate: BrokenBackend(.conv2d, .scale(1.1)), baseline: ReferenceBackend.shared, options: Self.tiny)
    #expect(!report.passed)
    #expect(report.differences.contains { $0 > Self.tiny.tolerance }, "\(report.text)")
    #expect(report.text.contains("FAILED"))
  }

  @Test func aFailingBackendIsReported() throws {
    let report = TrainingComparison.run(candidate: BrokenBackend(.maxPool2d, .fail), baseline: ReferenceBackend.shared, options: Self.tiny)
    #expect(!report.passed)
    #expect(report.message?.contains("deliberately broken") == true, "\(report.text)")
  }
}
