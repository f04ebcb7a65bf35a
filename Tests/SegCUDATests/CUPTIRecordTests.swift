import CCUDA
import Foundation
import SegCore
import Testing

@testable import SegCUDA

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Synthetic activity buffers

/// A buffer of activity records laid out as CUDA 13's structs (each at its sizeof, fields at the
/// offsets the header test pins), as CUPTI would hand one back.
final class SyntheticActivityBuffer {
  private(set) var bytes: [UInt8] = []
  /// Kernel names, alive as long as the buffer (a record points at its name, as CUPTI's do).
  private var names: [UnsafeMutablePointer<CChar>] = []

  deinit { names.forEach { free($0) } }

  private func record(kind: Int32, size: Int32, _ fill: (UnsafeMutableRawPointer) -> Void) {
    var r = [UInt8](repeating: 0xAB, count: Int(size))  // padding that is not zero: only the fields we write count
    r.withUnsafeMutableBytes { p in
      p.storeBytes(of: kind, as: Int32.self)
      fill(p.baseAddress!)
    }
    bytes += r
  }

  func kernel(_ name: String, start: UInt64, end: UInt64, correlation: UInt32, stream: UInt32 = 7, grid: [Int32] = [4, 2, 1], block: [Int32] = [256, 1, 1]) {
    let c = strdup(name)!
    names.append(c)
    record(kind: CCUDA_CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, size: CCUDA_CUPTI_KERNEL_SIZE) { p in
      p.storeBytes(of: start, toByteOffset: Int(CCUDA_CUPTI_KERNEL_START), as: UInt64.self)
      p.storeBytes(of: end, toByteOffset: Int(CCUDA_CUPTI_KERNEL_END), as: UInt64.self)
      p.storeBytes(of: correlation, toByteOffset: Int(CCUDA_CUPTI_KERNEL_CORRELATION_ID), as: UInt32.self)
      p.storeBytes(of: stream, toByteOffset: Int(CCUDA_CUPTI_KERNEL_STREAM_ID), as: UInt32.self)
      for (i, at) in [CCUDA_CUPTI_KERNEL_GRID_X, CCUDA_CUPTI_KERNEL_GRID_Y, CCUDA_CUPTI_KERNEL_GRID_Z].enumerated() {
        p.storeBytes(of: grid[i], toByteOffset: Int(at), as: Int32.self)
      }
      for (i, at) in [CCUDA_CUPTI_KERNEL_BLOCK_X, CCUDA_CUPTI_KERNEL_BLOCK_Y, CCUDA_CUPTI_KERNEL_BLOCK_Z].enumerated() {
        p.storeBytes(of: block[i], toByteOffset: Int(at), as: Int32.self)
      }
      p.storeBytes(of: UnsafePointer(c), toByteOffset: Int(CCUDA_CUPTI_KERNEL_NAME), as: UnsafePointer<CChar>.self)
    }
  }

  func memcpy(direction: UInt8, bytes count: UInt64, start: UInt64, end: UInt64, correlation: UInt32) {
    record(kind: CCUDA_CUPTI_ACTIVITY_KIND_MEMCPY, size: CCUDA_CUPTI_MEMCPY_SIZE) { p in
      p.storeBytes(of: direction, toByteOffset: Int(CCUDA_CUPTI_MEMCPY_COPY_KIND), as: UInt8.self)
      p.storeBytes(of: count, toByteOffset: Int(CCUDA_CUPTI_MEMCPY_BYTES), as: UInt64.self)
      p.storeBytes(of: start, toByteOffset: Int(CCUDA_CUPTI_MEMCPY_START), as: UInt64.self)
      p.storeBytes(of: end, toByteOffset: Int(CCUDA_CUPTI_MEMCPY_END), as: UInt64.self)
      p.storeBytes(of: correlation, toByteOffset: Int(CCUDA_CUPTI_MEMCPY_CORRELATION_ID), as: UInt32.self)
      p.storeBytes(of: UInt32(7), toByteOffset: Int(CCUDA_CUPTI_MEMCPY_STREAM_ID), as: UInt32.self)
    }
  }

  func memset(bytes count: UInt64, start: UInt64, end: UInt64, correlation: UInt32) {
    record(kind: CCUDA_CUPTI_ACTIVITY_KIND_MEMSET, size: CCUDA_CUPTI_MEMSET_SIZE) { p in
      p.storeBytes(of: count, toByteOffset: Int(CCUDA_CUPTI_MEMSET_BYTES), as: UInt64.self)
      p.storeBytes(of: start, toByteOffset: Int(CCUDA_CUPTI_MEMSET_START), as: UInt64.self)
      p.storeBytes(of: end, toByteOffset: Int(CCUDA_CUPTI_MEMSET_END), as: UInt64.self)
      p.storeBytes(of: correlation, toByteOffset: Int(CCUDA_CUPTI_MEMSET_CORRELATION_ID), as: UInt32.self)
      p.storeBytes(of: UInt32(7), toByteOffset: Int(CCUDA_CUPTI_MEMSET_STREAM_ID), as: UInt32.self)
    }
  }

  func external(op: UInt64, correlation: UInt32, kind: Int32 = CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0) {
    record(kind: CCUDA_CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION, size: CCUDA_CUPTI_EXTERNAL_SIZE) { p in
      p.storeBytes(of: kind, toByteOffset: Int(CCUDA_CUPTI_EXTERNAL_KIND), as: Int32.self)
      p.storeBytes(of: op, toByteOffset: Int(CCUDA_CUPTI_EXTERNAL_ID), as: UInt64.self)
      p.storeBytes(of: correlation, toByteOffset: Int(CCUDA_CUPTI_EXTERNAL_CORRELATION_ID), as: UInt32.self)
    }
  }

  func driverCall(start: UInt64, end: UInt64, correlation: UInt32) {
    record(kind: CCUDA_CUPTI_ACTIVITY_KIND_DRIVER, size: CCUDA_CUPTI_API_SIZE) { p in
      p.storeBytes(of: start, toByteOffset: Int(CCUDA_CUPTI_API_START), as: UInt64.self)
      p.storeBytes(of: end, toByteOffset: Int(CCUDA_CUPTI_API_END), as: UInt64.self)
      p.storeBytes(of: correlation, toByteOffset: Int(CCUDA_CUPTI_API_CORRELATION_ID), as: UInt32.self)
    }
  }

  /// The records, read back through the packed walk (8-byte aligned, as CUPTI's buffers are).
  func read() throws -> [ActivityRecord] {
    var out: [ActivityRecord] = []
    try withBuffer { try ActivityBufferWalk.packed.forEach($0, valid: $1) { out.append($0) } }
    return out
  }

  /// Runs `body` on an aligned copy of the bytes and their count.
  func withBuffer<R>(_ body: (UnsafeMutablePointer<UInt8>, Int) throws -> R) rethrows -> R {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 8), alignment: 8)
    defer { p.deallocate() }
    bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    return try body(p.assumingMemoryBound(to: UInt8.self), bytes.count)
  }
}

// MARK: - Tests

@Suite struct CUPTIRecordTests {
  /// Each kind of record reads back with the fields written at the pinned offsets.
  @Test func recordsDecodeAtThePinnedOffsets() throws {
    let b = SyntheticActivityBuffer()
    b.kernel("conv_bias_relu_f16", start: 1_000, end: 4_500, correlation: 41, stream: 13, grid: [96, 3, 2], block: [128, 2, 1])
    b.memcpy(direction: 2, bytes: 4096, start: 5_000, end: 5_800, correlation: 42)
    b.memset(bytes: 256, start: 6_000, end: 6_100, correlation: 43)
    b.external(op: 9, correlation: 41)
    b.driverCall(start: 100, end: 200, correlation: 41)
    let records = try b.read()
    #expect(records.count == 5)
    #expect(records[0] == .kernel(.init(name: "conv_bias_relu_f16", start: 1_000, end: 4_500, correlation: 41, stream: 13, grid: [96, 3, 2], block: [128, 2, 1])))
    #expect(records[1] == .memcpy(.init(copyKind: 2, bytes: 4096, start: 5_000, end: 5_800, correlation: 42, stream: 7)))
    #expect(records[2] == .memset(.init(copyKind: 0, bytes: 256, start: 6_000, end: 6_100, correlation: 43, stream: 7)))
    #expect(records[3] == .external(kind: CCUDA_CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, external: 9, correlation: 41))
    #expect(records[4] == .api(start: 100, end: 200, correlation: 41))
  }

  /// A record of a kind we never enable stops the walk with an error naming it and its place.
  @Test func anUnknownRecordIsReported() throws {
    let b = SyntheticActivityBuffer()
    b.memset(bytes: 1, start: 0, end: 1, correlation: 1)
    var bytes = b.bytes + [UInt8](repeating: 0, count: 16)
    bytes.withUnsafeMutableBytes { $0.storeBytes(of: Int32(99), toByteOffset: Int(CCUDA_CUPTI_MEMSET_SIZE), as: Int32.self) }
    let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 8)
    defer { p.deallocate() }
    bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    var seen = 0
    #expect {
      try ActivityBufferWalk.packed.forEach(p.assumingMemoryBound(to: UInt8.self), valid: bytes.count) { _ in seen += 1 }
    } throws: { "\($0)".contains("kind 99 at byte \(CCUDA_CUPTI_MEMSET_SIZE)") }
    #expect(seen == 1)
  }

  /// Work is tied to the op whose id was pushed when it was queued, whichever of the two records
  /// comes first; work of no op comes out at `finish()` without one; pairings of another kind
  /// (another tool's) are ignored.
  @Test func correlationTiesWorkToOps() throws {
    var out: [DeviceActivity] = []
    let c = ActivityCorrelator { out.append($0) }
    let device = SyntheticActivityBuffer()
    device.kernel("a", start: 0, end: 1_000, correlation: 10)  // its pairing comes later
    device.kernel("b", start: 1_000, end: 3_000, correlation: 11)
    device.memset(bytes: 64, start: 3_000, end: 3_100, correlation: 12)  // queued outside any op
    device.memcpy(direction: 1, bytes: 64, start: 4_000, end: 4_400, correlation: 13)
    let host = SyntheticActivityBuffer()
    host.external(op: 1, correlation: 10)
    host.driverCall(start: 0, end: 5, correlation: 10)
    host.external(op: 2, correlation: 11)
    host.external(op: 5, correlation: 13, kind: 4)  // CUSTOM1: not ours
    for r in try device.read() { c.take(r) }
    #expect(out.isEmpty && c.waiting.count == 4)
    for r in try host.read() { c.take(r) }
    #expect(out == [
      DeviceActivity(kind: .kernel, name: "a", nanoseconds: 1_000, op: 1), DeviceActivity(kind: .kernel, name: "b", nanoseconds: 2_000, op: 2),
    ])
    let later = SyntheticActivityBuffer()
    later.kernel("c", start: 5_000, end: 5_500, correlation: 11)  // a second launch of one call (a graph's) finds op 2 at once
    for r in try later.read() { c.take(r) }
    #expect(out.last == DeviceActivity(kind: .kernel, name: "c", nanoseconds: 500, op: 2))
    c.finish()
    #expect(Array(out.suffix(2)) == [
      DeviceActivity(kind: .fill, name: "memset", nanoseconds: 100, op: nil), DeviceActivity(kind: .copy, name: "memcpy HtoD", nanoseconds: 400, op: nil),
    ])
    #expect(c.waiting.isEmpty)
  }
}
