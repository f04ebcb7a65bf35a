import Synchronization

// MARK: - Pieces claimed one at a time

/// Hands a loop's pieces to the threads one at a time, each thread taking the next piece when it
/// is done with its last, instead of cutting the loop into one fixed share per thread: on a
/// machine whose other programs take a core from one of our threads for a while, the other thread
/// takes over its pieces rather than waiting for them at the end. Every piece writes its own part
/// of the output (or its own sums), so which thread ran it changes nothing in the result.
enum WinogradSchedule {
  /// Runs `worker` on up to `Parallel.threads` threads (at most one per piece); each calls `next`
  /// for the pieces 0..<count it is to run, until `next` gives nil. A worker sets up its scratch
  /// once, before its first piece.
  static func claim(_ count: Int, _ worker: (_ next: () -> Int?) -> Void) {
    guard count > 0 else { return }
    let counter = Counter()
    let next = { () -> Int? in
      let index = counter.value.wrappingAdd(1, ordering: .relaxed).oldValue
      return index < count ? index : nil
    }
    Parallel.forEach(min(Parallel.threads, count), grain: 1, align: 1) { workers in
      for _ in workers { worker(next) }
    }
  }

  /// Runs `body` on the ranges of `block` items that cover 0..<count, claimed as `claim` does.
  static func blocks(_ count: Int, block: Int, _ body: (Range<Int>) -> Void) {
    claim((count + block - 1) / block) { next in
      while let b = next() { body((b * block)..<min(count, (b + 1) * block)) }
    }
  }

  private final class Counter: Sendable {
    let value = Atomic<Int>(0)
  }
}
