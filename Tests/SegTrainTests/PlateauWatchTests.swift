import Foundation
import SegTrain
import Testing

// MARK: - Warm-up and the plateau

@Suite struct PlateauWatchTests {
  @Test func theWarmUpRampsLinearlyThenHolds() {
    var o = TrainingOptions()
    o.learningRate = 1e-3
    #expect(o.learningRate(afterUpdates: 0) == 1e-3)
    o.learningRateWarmupSteps = 4
    #expect([0, 1, 2, 3, 4, 100].map { o.learningRate(afterUpdates: $0) } == [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
  }

  @Test func thePriorsEntropy() throws {
    #expect(abs(try #require(PlateauWatch.entropy(of: [0.5, 0.5])) - log(2)) < 1e-12)
    let h = try #require(PlateauWatch.entropy(of: [0.8, 0.2]))
    #expect(abs(h - -(0.8 * log(0.8) + 0.2 * log(0.2))) < 1e-12)
    // Counts work as well as shares; an empty or all-zero prior has no entropy.
    #expect(abs(try #require(PlateauWatch.entropy(of: [80, 20])) - h) < 1e-12)
    #expect(PlateauWatch.entropy(of: []) == nil && PlateauWatch.entropy(of: [0, 0]) == nil)
  }
}
