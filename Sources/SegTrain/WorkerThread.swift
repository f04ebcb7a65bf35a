import Foundation
import SegCore

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Worker threads that say when they cannot start

/// Starts detached threads with pthread_create, whose result is checked: Foundation's
/// `Thread.start()` ignores a failure to create the thread (EAGAIN when the process or the machine
/// is out of threads), and a pipeline waiting for a worker that never started would wait forever.
enum WorkerThread {
  /// Runs `body` on a new detached thread named `name`, or throws naming the reason; `workers` is
  /// the pool's size, for the message.
  static func start(name: String, workers: Int, _ body: @escaping @Sendable () -> Void) throws {
    let context = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { raw in
      let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
      Thread.current.name = box.name
      box.body()
      return nil
    }, context)
    guard status == 0 else {
      Unmanaged<Box>.fromOpaque(context).release()
      throw SettingError(
        .workers, value: workers,
        "could not start data worker thread \(name): \(String(cString: strerror(status))); use fewer, or 0 to prepare batches on the training thread")
    }
    pthread_detach(thread)
  }

  private final class Box: @unchecked Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) { (self.name, self.body) = (name, body) }
  }
}
