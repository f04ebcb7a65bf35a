import Foundation
import SegTrain

// MARK: - Progress

/// A one-line progress bar with rate and time left, redrawn in place on a terminal; elsewhere
/// (a pipe, a log file) only the plain lines are printed.
final class ProgressBar {
  let isTerminal = isatty(STDOUT_FILENO) == 1
  private let clock = ContinuousClock()
  private var start: ContinuousClock.Instant?
  private var firstStep = 0
  private var drawn = false

  /// Prints a line, clearing the bar first and drawing nothing back (the next update does).
  func say(_ line: String) {
    if drawn { print("\r\u{1B}[K", terminator: "") }
    drawn = false
    print(line)
    fflush(nil)  // every C stream: `stdout` itself is a mutable global to Swift 6
  }

  /// Redraws the bar at `step` of `total`.
  func update(_ step: Int, _ total: Int) {
    let now = clock.now
    guard let start else {
      (start, firstStep) = (now, step - 1)
      return
    }
    let done = step - firstStep
    let rate = Double(done) / max((now - start).seconds, 1e-9)
    let left = Double(total - step) / max(rate, 1e-9)
    let width = 30
    let filled = min(width, width * step / max(total, 1))
    let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
    print(String(format: "\r\u{1B}[K[%@] %ld/%ld  %.2f steps/s  ETA %02ld:%02ld", bar, step, total, rate, Int(left) / 60, Int(left) % 60),
          terminator: "")
    fflush(nil)  // every C stream: `stdout` itself is a mutable global to Swift 6
    drawn = true
  }

  /// Ends the bar's line.
  func finish() {
    if drawn { print("\r\u{1B}[K", terminator: "") }
    drawn = false
  }
}

// MARK: - Following a run

extension ProgressBar: TrainingCallback {
  func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws { update(event.step, event.maxSteps) }
  func runEnded() throws { finish() }
}
