import Foundation
import SegCore

// MARK: - The tracer

/// What the tracer asks of CUPTI: record kinds on and off, our op ids pushed and popped on the
/// calling thread, buffers flushed. `CUPTIControl` is the real one; the tests give a stand-in that
/// hands over synthetic buffers.
protocol ActivityControl: AnyObject, Sendable {
  /// Where the records come from, for the profile's header.
  var source: String { get }
  /// How a completed buffer's records are found.
  var walk: ActivityBufferWalk { get }
  /// Turns recording on; each completed buffer's first `valid` bytes go to `completed`, on any
  /// thread, and belong to CUPTI again when it returns.
  func enable(completed: @escaping @Sendable (UnsafeMutablePointer<UInt8>, Int) -> Void) throws
  /// The calling thread's API calls from now on belong to op `id`.
  func push(_ id: UInt64)
  /// ... until here.
  func pop()
  /// Hands every buffer to `completed`, including ones with records of work still running.
  func flush() throws
  /// Turns recording off for good (what is still buffered is dropped).
  func disable()
}

/// `--profile`'s reader of the device's work on CUDA: each op's id is pushed while it queues its
/// kernels, CUPTI's records come back in buffers as the GPU finishes them, and the correlator ties
/// each kernel, copy and fill to its op. Nothing waits for the GPU until `collect()`, which waits
/// once.
public final class CUPTITracer: DeviceActivityTracer, @unchecked Sendable {
  let control: any ActivityControl
  /// Waits for the work queued so far (the backend's synchronize).
  let wait: @Sendable () throws -> Void
  private let lock = NSLock()
  private var correlator: ActivityCorrelator?
  /// A buffer that could not be read, reported at the next `collect()`.
  private var problem: Error?

  init(control: any ActivityControl, wait: @escaping @Sendable () throws -> Void) {
    self.control = control
    self.wait = wait
  }

  public var source: String { control.source }

  public func start(deliver: @escaping @Sendable (DeviceActivity) -> Void) throws {
    lock.withLock { correlator = ActivityCorrelator(deliver: deliver) }
    try control.enable { [weak self] buffer, valid in self?.consume(buffer, valid: valid) }
  }

  public func enter(op id: UInt64) { control.push(id) }
  public func leave(op id: UInt64) { control.pop() }

  public func collect() throws {
    try wait()
    try control.flush()
    let failed: Error? = lock.withLock {
      correlator?.finish()
      defer { problem = nil }
      return problem
    }
    if let failed { throw failed }
  }

  public func stop() { control.disable() }

  /// Reads one completed buffer into the correlator.
  func consume(_ buffer: UnsafeMutablePointer<UInt8>, valid: Int) {
    lock.withLock {
      guard let correlator else { return }
      do { try control.walk.forEach(buffer, valid: valid) { correlator.take($0) } } catch { problem = problem ?? error }
    }
  }
}
