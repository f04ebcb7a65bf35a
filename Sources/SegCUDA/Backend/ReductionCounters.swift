import Foundation

// MARK: - Tickets of one-launch reductions

/// A device buffer of `capacity` 32-bit counters, zero between launches, through which the blocks
/// of a one-launch reduction (`sumRows`) learn which of them finishes a tile: each takes a ticket,
/// and the last sets the counter back to 0. Allocated and zeroed at the first use (before any
/// capture: the first step is traced eagerly), freed with the backend. One stream runs the
/// backend's work in order, so launches never share a counter at the same time.
final class ReductionCounters: @unchecked Sendable {
  /// Counters available to one launch (tiles of 32 columns: sums of up to 131,072 outputs).
  static let capacity = 4096

  private let device: any KernelDevice
  private var address: UInt64?
  private let lock = NSLock()

  init(device: any KernelDevice) { self.device = device }

  /// The counters' device address, allocating and zeroing them at the first call.
  func pointer() throws -> UInt64 {
    try lock.withLock {
      if let address { return address }
      let bytes = Self.capacity * 4
      let p = try device.allocate(bytes)
      do { try device.fill(p, byte: 0, bytes: bytes) } catch {
        device.free(p)
        throw error
      }
      address = p
      return p
    }
  }

  /// Whether the buffer exists (for the tests that count the backend's allocations).
  var allocated: Bool { lock.withLock { address != nil } }

  deinit { if let address { device.free(address) } }
}
