import Foundation

// MARK: - Lock

/// A mutual-exclusion lock for small shared state.
public final class Lock: @unchecked Sendable {
  private let mutex = NSLock()
  public init() {}
  /// Runs `body` holding the lock.
  @inline(__always) public func withLock<T>(_ body: () throws -> T) rethrows -> T {
    mutex.lock()
    defer { mutex.unlock() }
    return try body()
  }
}
