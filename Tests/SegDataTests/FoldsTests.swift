import SegCore
import SegData
import Testing

@Suite struct FoldsTests {
  @Test(arguments: [(30, 5), (31, 5), (29, 5), (7, 7), (10, 3), (2, 2), (100, 6)])
  func validationSetsPartitionTheItems(count: Int, folds: Int) throws {
    var validated: [Int] = []
    var sizes: [Int] = []
    for k in 0..<folds {
      let (train, validation) = try CrossValidation.split(count: count, folds: folds, fold: k, seed: 3)
      #expect(Set(train).isDisjoint(with: validation), "fold \(k)")
      #expect((train + validation).sorted() == Array(0..<count), "fold \(k)")
      #expect(train == train.sorted() && validation == validation.sorted())
      validated += validation
      sizes.append(validation.count)
    }
    #expect(validated.sorted() == Array(0..<count), "every item validated exactly once")
    #expect(sizes.max()! - sizes.min()! <= 1, "sizes \(sizes)")
  }

  @Test func thirtySlicesGiveTwentyFourAndSix() throws {
    for k in 0..<5 {
      let (train, validation) = try CrossValidation.split(count: 30, fold: k)
      #expect(train.count == 24 && validation.count == 6)
    }
  }

  @Test func splitsAreSeeded() throws {
    let a = try CrossValidation.split(count: 30, fold: 2, seed: 7)
    let b = try CrossValidation.split(count: 30, fold: 2, seed: 7)
    let c = try CrossValidation.split(count: 30, fold: 2, seed: 8)
    #expect(a.validation == b.validation && a.train == b.train)
    #expect(a.validation != c.validation)
    // The shuffle is written out, so this seed's order is fixed across toolchains.
    #expect(CrossValidation.shuffled(count: 10, seed: 0) == CrossValidation.shuffled(count: 10, seed: 0))
    #expect(CrossValidation.shuffled(count: 10, seed: 0).sorted() == Array(0..<10))
    #expect(CrossValidation.shuffled(count: 30, seed: 0) != Array(0..<30), "the items are shuffled")
  }

  @Test func badOptionsNameTheirSetting() {
    #expect { try CrossValidation.split(count: 30, folds: 5, fold: 5) } throws: { $0 as? SettingError == SettingError(.fold, value: 5, "out of range; with 5 folds it must be 0...4") }
    #expect { try CrossValidation.split(count: 30, folds: 5, fold: -1) } throws: { ($0 as? SettingError)?.setting == .fold }
    #expect { try CrossValidation.split(count: 30, folds: 1, fold: 0) } throws: { ($0 as? SettingError)?.setting == .folds }
    #expect { try CrossValidation.split(count: 4, folds: 5, fold: 0) } throws: { ($0 as? SettingError)?.setting == .folds }
    #expect { try CrossValidation.split(count: 0, folds: 2, fold: 0) } throws: { ($0 as? SettingError)?.setting == .folds }
  }
}
