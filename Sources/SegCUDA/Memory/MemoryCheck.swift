import Foundation

// MARK: - A check of the memory path on the GPU

extension CUDAContext {
  /// Exercises the caching allocator and the pinned staging buffers on the device, for
  /// `unet doctor --check`: a round trip larger than one staging chunk, many small uploads in
  /// flight at once, reuse of a freed block without a device allocation, and an impossible
  /// allocation that must fail with the out-of-memory message and leave the allocator usable.
  /// Throws a `CUDAError` naming the first thing that is wrong; returns a one-line summary.
  public func checkMemory() throws -> String {
    func fail(_ what: String) -> CUDAError { CUDAError(.callFailed, "memory check: \(what)") }

    // A round trip in more than one chunk, with a pattern that shows a misplaced chunk.
    let count = staging.chunkBytes + staging.chunkBytes / 2 + 12_345
    let sent = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 16) }
    let big = try allocate(count)
    defer { free(big) }
    try sent.withUnsafeBytes { try upload($0, to: big) }
    var back = [UInt8](repeating: 0, count: count)
    try back.withUnsafeMutableBytes { try download(big, into: $0) }
    guard back == sent else {
      let i = back.indices.first { back[$0] != sent[$0] } ?? 0
      throw fail("a \(count)-byte upload and download differ first at byte \(i)")
    }

    // Small uploads queued back to back (each from its own staging buffer), read back in one go.
    let pieces = 64
    let small = try allocate(pieces * 4)
    defer { free(small) }
    for i in 0..<pieces {
      var v = Int32(i * 1_000 + 7)
      try withUnsafeBytes(of: &v) { try upload($0, to: small + UInt64(4 * i)) }
    }
    var values = [Int32](repeating: 0, count: pieces)
    try values.withUnsafeMutableBytes { try download(small, into: $0) }
    guard values == (0..<pieces).map({ Int32($0 * 1_000 + 7) }) else {
      throw fail("64 small uploads in flight read back as \(values.prefix(8))...")
    }

    // A freed block comes back for the same class without a device allocation.
    let before = memory.statistics
    let a = try allocate(3 << 20)
    free(a)
    let b = try allocate((3 << 20) - 1000)
    free(b)
    let after = memory.statistics
    guard a == b, after.deviceAllocations - before.deviceAllocations <= 1 else {
      throw fail("a freed block was not reused (\(a) then \(b))")
    }

    // An allocation of twice the device's memory: one retry, then the out-of-memory error.
    do {
      let p = try allocate(2 * device.totalMemory)
      free(p)
      throw fail("allocating \(2 * device.totalMemory) bytes succeeded on a \(device.totalMemory)-byte device")
    } catch let e as CUDAError where e.message.hasPrefix("out of device memory") {
      guard e.message.contains("--batch-size") else { throw fail("the out-of-memory error lacks the hint: \(e)") }
    }
    let c = try allocate(1 << 20)
    free(c)
    try synchronize()

    let s = memory.statistics
    return "memory: \(count)-byte round trip, \(pieces) small uploads, block reuse and the out-of-memory error OK; "
      + "\(s); pinned staging \(formatBytes(staging.heldBytes))"
  }
}
