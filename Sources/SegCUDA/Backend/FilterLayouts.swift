import Foundation
import SegCore

// MARK: - Row-major filters reordered once

/// OHWI reorders of row-major filters (a loaded or freshly made model's: trained filters are kept
/// OHWI, `StorageLayout`), by the buffer they were made from: the forward convolution and its
/// data gradient read the same filter buffer, and inference reads the same weights every call, so
/// each buffer is reordered once. Buffers keep their value while they live (one reordered in
/// place keeps it too), so a live source's reorder is still its value; an entry goes with its
/// source (the next lookup drops it).
final class FilterLayouts: @unchecked Sendable {
  private struct Entry {
    weak var source: CUDAStorage?
    let pointer: UInt64
    let type: TensorType
    let ohwi: CUDAStorage
  }

  private var entries: [ObjectIdentifier: Entry] = [:]
  private let lock = NSLock()

  /// The OHWI reorder of `filter`, made by `reorder` unless one of the same buffer exists.
  func ohwi(of filter: DeviceOperand, reorder: () throws -> CUDAStorage) throws -> CUDAStorage {
    try lock.withLock {
      entries = entries.filter { $0.value.source != nil }
      let key = ObjectIdentifier(filter.storage)
      if let e = entries[key], e.source === filter.storage, e.pointer == filter.pointer, e.type == filter.type {
        return e.ohwi
      }
      let made = try reorder()
      entries[key] = Entry(source: filter.storage, pointer: filter.pointer, type: filter.type, ohwi: made)
      return made
    }
  }

  /// Forgets every reorder: at a capture's start and end, since a captured graph rewrites its own
  /// buffers at each launch (its carried weights are updated in place), so a reorder recorded in
  /// it is no reorder of what such a buffer holds later.
  func removeAll() { lock.withLock { entries = [:] } }

  /// The reorders held now (for tests).
  var count: Int { lock.withLock { entries.values.filter { $0.source != nil }.count } }
}
