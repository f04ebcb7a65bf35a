import Dispatch
import Foundation

// MARK: - Parallel loops

/// Splits a kernel's work across threads. Work is cut into pieces by the problem size only, never
/// by timing, and every piece writes its own part of the output, so a kernel's result does not
/// depend on how many threads ran it (reductions add fixed blocks' partial sums in block order).
enum Parallel {
  /// The most threads a parallel loop uses; nil means one per active processor. Tests lower it to
  /// check that results do not depend on the thread count.
  @TaskLocal static var threadLimit: Int? = nil

  /// Threads available to one loop.
  static var threads: Int { max(1, threadLimit ?? processors) }

  /// The processors this process may run on: its CPU affinity (a rank that `mpirun --bind-to core`
  /// or `taskset` pinned to one core gets one thread), else the active processors.
  static let processors: Int = {
    // Cpus_allowed in /proc/self/status is the affinity mask in hex, in comma-separated words.
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
    {
      let hex = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
      let count = hex.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
      if count > 0 { return min(count, ProcessInfo.processInfo.activeProcessorCount) }
    }
    return ProcessInfo.processInfo.activeProcessorCount
  }()


  /// Runs `body` over contiguous subranges covering `0..<count`, in parallel when there is more
  /// than `grain` work items per thread. Subrange bounds are multiples of `align` (except the
  /// end), so SIMD loops in `body` see whole vectors.
  static func forEach(_ count: Int, grain: Int, align: Int = 16, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let pieces = min(threads, (count + max(grain, 1) - 1) / max(grain, 1))
    guard pieces > 1 else { return body(0..<count) }
    // Round the piece length up to the alignment so that only the last piece is ragged.
    let length = ((count + pieces - 1) / pieces + align - 1) / align * align
    let used = (count + length - 1) / length
    withoutActuallyEscaping(body) { body in
      // Each piece writes only its own subrange of the output: sharing `body` is safe.
      let shared = UncheckedSendable(body)
      DispatchQueue.concurrentPerform(iterations: used) { p in
        shared.value((p * length)..<min(count, (p + 1) * length))
      }
    }
  }

  /// Runs `body(i)` for every task `i` in `0..<count`, spreading tasks over threads; `cost` is
  /// roughly the elements one task touches, so that cheap tasks are grouped.
  static func forEachTask(_ count: Int, cost: Int, _ body: (Int) -> Void) {
    let perGrain = max(1, defaultGrain / max(cost, 1))
    forEach(count, grain: perGrain, align: 1) { range in
      for i in range { body(i) }
    }
  }

  /// Elements below which a loop stays on one thread: starting threads costs a few microseconds.
  static let defaultGrain = 1 << 15
}

/// A value handed to worker threads that each touch a disjoint part of what it points to.
struct UncheckedSendable<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}
