import Foundation

// MARK: - One thread for the CPU backend's oneDNN work

/// Runs work on one long-lived thread shared by these tests.
///
/// Why: Debian's oneDNN keeps its library-managed scratchpad per thread, tied to the thread that
/// created a primitive, and the CPU backend caches primitives process-wide; a cached convolution
/// created on one test's thread and run on another's finds no scratchpad there and crashes in
/// memset (reproduced: this suite alone, in parallel, crashed every time). Until SegCPU gives its
/// primitives a user-managed scratchpad, these tests do their CPU work on one thread.
final class OneThread: @unchecked Sendable {
  static let shared = OneThread()
  private let condition = NSCondition()
  private var jobs: [() -> Void] = []

  private init() {
    let thread = Thread { [unowned self] in self.loop() }
    thread.stackSize = 16 << 20
    thread.start()
  }

  private func loop() {
    while true {
      condition.lock()
      while jobs.isEmpty { condition.wait() }
      let job = jobs.removeFirst()
      condition.unlock()
      job()
    }
  }

  /// `body`'s result, computed on the shared thread (callers wait their turn).
  func run<T>(_ body: @escaping () throws -> T) throws -> T {
    var result: Result<T, Error>? = nil
    let done = DispatchSemaphore(value: 0)
    condition.lock()
    jobs.append {
      result = Result { try body() }
      done.signal()
    }
    condition.signal()
    condition.unlock()
    done.wait()
    return try result!.get()
  }
}
