import Foundation

// MARK: - Time per phase

/// Where the Winograd convolutions spend their time: thread-seconds in each phase, summed over
/// the threads, while a measurement is on (`WinogradPhases.measure`); the kernel benchmark's
/// breakdown. Off (nothing timed) otherwise.
enum WinogradPhases {
  /// The phases of one convolution.
  enum Phase: String, CaseIterable, Sendable {
    /// Finding or making the transformed filter (the cache look-up included); backward-filter: the
    /// transform of the 36 sums back to the 3x3 filter gradient.
    case filter
    /// Bᵀ d B of every input tile.
    case input
    /// A dy Aᵀ of every output-gradient tile (backward-filter).
    case gradient
    /// The 36 matrix products.
    case products
    /// Aᵀ m A with the bias and ReLU, written to the output.
    case output
  }

  /// The clock of the measurement under way, or an idle one.
  static var clock: Clock { lock.withLock { active } ?? Clock(on: false) }

  nonisolated(unsafe) private static var active: Clock?
  private static let lock = NSLock()

  /// Runs `body` with the phases timed; returns its result and the thread-seconds of each phase.
  /// Measurements do not nest (the benchmark runs one at a time).
  static func measure<T>(_ body: () throws -> T) rethrows -> (T, [Phase: Double]) {
    let clock = Clock(on: true)
    lock.withLock { active = clock }
    defer { lock.withLock { active = nil } }
    let result = try body()
    return (result, clock.seconds)
  }

  /// Thread-seconds per phase; `time` adds to them when on.
  final class Clock: @unchecked Sendable {
    let on: Bool
    private var totals: [Phase: Double] = [:]
    private let lock = NSLock()

    init(on: Bool) { self.on = on }

    var seconds: [Phase: Double] { lock.withLock { totals } }

    /// Runs `body`, adding its time to `phase` when on.
    @inline(__always)
    func time<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
      guard on else { return try body() }
      let start = DispatchTime.now().uptimeNanoseconds
      defer {
        let t = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        lock.withLock { totals[phase, default: 0] += t }
      }
      return try body()
    }
  }
}
