import SegCore
import SegNN
import Testing

@Suite struct MetricsTests {
  @Test func twoClassCountsAndScores() throws {
    let truth: [Int32] = [0, 0, 1, 1, 1, 0]
    let predicted: [Int32] = [0, 1, 1, 1, 0, 0]
    let s = try SegmentationScores(predicted: predicted, truth: truth, classes: 2)
    // Rows are the true class, columns the predicted one.
    #expect(s.confusion.counts == [2, 1, 1, 2])
    #expect(s.confusion[truth: 1, predicted: 0] == 1)
    #expect(s.confusion.truePositives(1) == 2 && s.confusion.falsePositives(1) == 1 && s.confusion.falseNegatives(1) == 1)
    #expect(s.perClassDice == [2.0 / 3, 2.0 / 3])
    #expect(s.perClassIoU == [0.5, 0.5])
    #expect(s.foregroundDice == 2.0 / 3 && s.foregroundIoU == 0.5)
    #expect(s.pixelAccuracy == 4.0 / 6)
  }

  @Test func foregroundIsTheMeanOverClassesOneAndUp() throws {
    let s = try SegmentationScores(predicted: [0, 1, 1, 2], truth: [0, 1, 2, 2], classes: 3)
    #expect(s.perClassDice == [1, 2.0 / 3, 2.0 / 3])
    #expect(s.perClassIoU == [1, 0.5, 0.5])
    #expect(s.foregroundDice == 2.0 / 3)
    #expect(s.foregroundIoU == 0.5)
  }

  @Test func classesAbsentFromTheTruth() throws {
    // Class 2 is absent from both: perfect agreement on its absence.
    let agree = try SegmentationScores(predicted: [0, 0, 1, 1], truth: [0, 0, 1, 1], classes: 3)
    #expect(agree.perClassDice == [1, 1, 1] && agree.perClassIoU == [1, 1, 1])
    // Class 2 predicted though absent: 0. Class 1 absent from both: 1.
    let s = try SegmentationScores(predicted: [0, 2, 0], truth: [0, 0, 0], classes: 3)
    #expect(s.perClassDice == [0.8, 1, 0])
    #expect(s.perClassIoU == [2.0 / 3, 1, 0])
    #expect(s.foregroundDice == 0.5)
    // Present in the truth but never predicted: 0.
    let missed = try SegmentationScores(predicted: [0, 0], truth: [0, 1], classes: 2)
    #expect(missed.perClassDice == [2.0 / 3, 0] && missed.perClassIoU == [0.5, 0])
    // No pixels at all: every class agrees.
    let none = try SegmentationScores(predicted: [], truth: [], classes: 2)
    #expect(none.perClassDice == [1, 1] && none.foregroundIoU == 1 && none.pixelAccuracy == 1)
  }

  @Test func countsAccumulateOverImages() throws {
    let (p1, t1): ([Int32], [Int32]) = ([0, 1, 1], [1, 1, 0])
    let (p2, t2): ([Int32], [Int32]) = ([1, 0], [1, 0])
    var m = try ConfusionMatrix(classes: 2)
    try m.add(predicted: p1, truth: t1)
    try m.add(predicted: p2, truth: t2)
    let pooled = try ConfusionMatrix(predicted: p1 + p2, truth: t1 + t2, classes: 2)
    #expect(m == pooled)
    #expect(try ConfusionMatrix(predicted: p1, truth: t1, classes: 2) + ConfusionMatrix(predicted: p2, truth: t2, classes: 2) == pooled)
    #expect(pooled.total == 5)
    #expect(SegmentationScores(confusion: pooled).foregroundDice == 4.0 / 6, "TP 2, FP 1, FN 1")
  }

  @Test func badInputsAreErrors() throws {
    #expect { try ConfusionMatrix(classes: 1) } throws: { "\($0)".contains("at least 2") }
    #expect { try ConfusionMatrix(predicted: [0, 1], truth: [0], classes: 2) } throws: { "\($0)".contains("must match") }
    #expect { try ConfusionMatrix(predicted: [0, 2], truth: [0, 1], classes: 2) } throws: { "\($0)".contains("pixel 1: predicted class 2") }
    #expect { try ConfusionMatrix(predicted: [0, 1], truth: [-1, 1], classes: 2) } throws: { "\($0)".contains("pixel 0: true class -1") }
    #expect { try ConfusionMatrix(classes: 2) + ConfusionMatrix(classes: 3) } throws: { "\($0)".contains("2 and 3 classes") }
  }
}
