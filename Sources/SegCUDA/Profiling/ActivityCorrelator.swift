import CCUDA
import SegCore

// MARK: - Tying device work to ops

/// Turns activity records into `DeviceActivity`s, each with the op that queued it. CUPTI writes,
/// before the record of every API call made while an op's id is pushed, an external correlation
/// record pairing that id with the call's correlation id; the kernel, copy or fill the call queued
/// carries the same correlation id. The two come in different buffers, in either order: a piece of
/// work whose pairing has not come yet waits here until it does, or until `finish()`.
final class ActivityCorrelator {
  /// Where each finished piece of work goes.
  let deliver: (DeviceActivity) -> Void
  /// Op id by correlation id, from the external correlation records.
  private(set) var ops: [UInt32: UInt64] = [:]
  /// Work whose correlation id has no op yet.
  private(set) var waiting: [UInt32: [DeviceActivity]] = [:]
  /// The highest correlation id of any work seen, for forgetting old pairings.
  private var newest: UInt32 = 0
  /// Pairings kept; every launch's work comes back long before this many later API calls.
  static let pairingWindow: UInt32 = 1 << 21

  init(deliver: @escaping (DeviceActivity) -> Void) { self.deliver = deliver }

  /// Takes one record.
  func take(_ record: ActivityRecord) {
    switch record {
    case .kernel(let k): work(DeviceActivity(kind: .kernel, name: k.name, nanoseconds: Self.span(k.start, k.end), op: nil), k.correlation)
    case .memcpy(let c):
      work(DeviceActivity(kind: .copy, name: "memcpy \(Self.direction(c.copyKind))", nanoseconds: Self.span(c.start, c.end), op: nil), c.correlation)
    case .memset(let c): work(DeviceActivity(kind: .fill, name: "memset", nanoseconds: Self.span(c.start, c.end), op: nil), c.correlation)
    case .external(let kind, let external, let correlation):
      guard kind == CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0 else { return }
      ops[correlation] = external
      if let held = waiting.removeValue(forKey: correlation) {
        for var a in held {
          a.op = external
          deliver(a)
        }
      }
    case .api, .other: return
    }
  }

  /// Hands on everything still waiting as work outside any op (after the device was waited for and
  /// every buffer flushed, no pairing is still to come).
  func finish() {
    for (_, held) in waiting.sorted(by: { $0.key < $1.key }) { held.forEach(deliver) }
    waiting = [:]
  }

  private func work(_ activity: DeviceActivity, _ correlation: UInt32) {
    newest = max(newest, correlation)
    if let op = ops[correlation] {
      var a = activity
      a.op = op
      deliver(a)
    } else {
      waiting[correlation, default: []].append(activity)
    }
    // Most API calls queue no work (their pairings are never used): forget those far behind.
    if ops.count > 2 * Int(Self.pairingWindow), newest > Self.pairingWindow {
      let oldest = newest - Self.pairingWindow
      ops = ops.filter { $0.key >= oldest }
    }
  }

  /// end - start, or 0 for a record without times (CUPTI had no device memory for them).
  static func span(_ start: UInt64, _ end: UInt64) -> UInt64 { end > start ? end - start : 0 }

  /// CUpti_ActivityMemcpyKind's short names.
  static func direction(_ kind: UInt8) -> String {
    switch kind {
    case 1: return "HtoD"
    case 2: return "DtoH"
    case 8: return "DtoD"
    case 10: return "PtoP"
    default: return "kind \(kind)"
    }
  }
}
