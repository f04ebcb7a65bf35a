import SegCore

// MARK: - Folds

/// K-fold cross-validation splits. Unlike the reference (whose five validation sets overlap and
/// leave four of its thirty slices never validated), the validation sets of the folds partition
/// the items: each item is validated in exactly one fold.
public enum CrossValidation {
  /// The train and validation indices (each ascending) of `fold` (0..<folds) over items 0..<count:
  /// the items are shuffled by `seed`, the shuffled order is cut into `folds` contiguous parts whose
  /// sizes differ by at most one (the larger parts first), and part `fold` is the validation set.
  /// Throws `SettingError` naming `folds` or `fold` when folds < 2, folds > count, or fold is not in 0..<folds.
  public static func split(count: Int, folds: Int = 5, fold: Int, seed: UInt64 = 0) throws -> (train: [Int], validation: [Int]) {
    guard folds >= 2 else {
      throw SettingError(.folds, value: folds, "cannot hold out data; use at least 2")
    }
    guard folds <= count else {
      throw SettingError(.folds, value: folds, "needs at least one item per fold, but there are \(count) items")
    }
    guard (0..<folds).contains(fold) else {
      throw SettingError(.fold, value: fold, "out of range; with \(folds) folds it must be 0...\(folds - 1)")
    }
    let order = shuffled(count: count, seed: seed)
    let bounds = partBounds(count: count, parts: folds)
    let validation = order[bounds[fold]..<bounds[fold + 1]]
    let train = order[..<bounds[fold]] + order[bounds[fold + 1]...]
    return (train.sorted(), validation.sorted())
  }

  /// 0..<count in an order drawn from `seed` (Fisher-Yates). The draws are written out here, not
  /// taken from the standard library's shuffle, so a seed gives the same folds on every toolchain.
  public static func shuffled(count: Int, seed: UInt64) -> [Int] {
    var order = Array(0..<max(count, 0))
    var rng = SplitMix64(seed: seed ^ 0xF01D_5EED_0000_0000)
    for i in stride(from: order.count - 1, to: 0, by: -1) {
      order.swapAt(i, Int(uniform(below: UInt64(i + 1), &rng)))
    }
    return order
  }

  /// Start offsets of `parts` contiguous parts of 0..<count, plus count at the end; the first
  /// count % parts parts are one longer.
  static func partBounds(count: Int, parts: Int) -> [Int] {
    let base = count / parts, extra = count % parts
    var bounds = [0]
    for p in 0..<parts { bounds.append(bounds[p] + base + (p < extra ? 1 : 0)) }
    return bounds
  }

  /// A uniform integer in 0..<n (n > 0) by multiply-high with rejection (Lemire), so no value is
  /// favoured.
  private static func uniform(below n: UInt64, _ rng: inout SplitMix64) -> UInt64 {
    let threshold = (0 &- n) % n
    while true {
      let (high, low) = rng.next().multipliedFullWidth(by: n)
      if low >= threshold { return high }
    }
  }
}
