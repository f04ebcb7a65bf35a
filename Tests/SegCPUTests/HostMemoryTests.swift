import Foundation
@testable import SegCPU
import Testing

// MARK: - The CPU backend's buffer memory

/// Each test has a pool of its own: the shared one serves every test running beside it.
@Suite struct HostMemoryTests {
  private let mib = 1 << 20

  private func fill(_ p: UnsafeMutableRawPointer, _ bytes: Int, _ value: UInt8) { memset(p, Int32(value), bytes) }
  private func allEqual(_ p: UnsafeMutableRawPointer, _ bytes: Int, _ value: UInt8) -> Bool {
    UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: bytes).allSatisfy { $0 == value }
  }

  /// Whether the kernel allows transparent huge pages ("always" or "madvise", not "never").
  static let hugePagesAllowed: Bool = {
    guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8) else { return false }
    return !mode.contains("[never]")
  }()

  /// Large buffers ask for transparent huge pages (MADV_HUGEPAGE), so that the kernel lists their
  /// mapping as eligible where THP is only on when asked ("madvise"): a first touch then faults in
  /// 2 MiB at a time (an eager training step at 572x572: 41k page faults instead of 166k).
  @Test(.enabled(if: HostMemoryTests.hugePagesAllowed, "transparent huge pages are off here (/sys/kernel/mm/transparent_hugepage/enabled)"))
  func largeBuffersAskForHugePages() throws {
    let pool = HostMemory(keepLimit: 0)
    let a = pool.allocate(8 * mib)
    defer { pool.free(a, 8 * mib) }
    let address = UInt(bitPattern: a)
    // /proc/self/smaps: a header line "start-end perms ..." per mapping, then its fields.
    var inside = false, eligible: Int?
    // Read to the end (its size says 0, which a whole-file read may take at its word).
    let smaps = try #require(FileHandle(forReadingAtPath: "/proc/self/smaps")).readDataToEndOfFile()
    for line in String(decoding: smaps, as: UTF8.self).split(separator: "\n") {
      if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
        let start = UInt(line[..<dash], radix: 16), let end = UInt(line[line.index(after: dash)..<space], radix: 16) {
        inside = start <= address && address < end
      } else if inside, line.hasPrefix("THPeligible:") {
        eligible = Int(line.dropFirst("THPeligible:".count).trimmingCharacters(in: .whitespaces))
      }
    }
    #expect(eligible == 1, "the 8 MiB buffer's mapping says THPeligible \(eligible.map(String.init) ?? "nothing")")
  }

  @Test func aFreedBufferServesTheSameSizeAgain() {
    let pool = HostMemory(keepLimit: 64 * mib)
    let a = pool.allocate(3 * mib)
    pool.free(a, 3 * mib)
    #expect(pool.keptBytesNow == 3 * mib)
    let b = pool.allocate(3 * mib)
    #expect(b == a)
    #expect(pool.keptBytesNow == 0 && pool.liveBytes == 3 * mib)
    pool.free(b, 3 * mib)
  }

  /// A request up to a quarter smaller than a kept buffer takes it whole (no page dropped), and
  /// gives it back at its whole size.
  @Test func aSlightlySmallerRequestTakesAKeptBufferWhole() {
    let pool = HostMemory(keepLimit: 64 * mib)
    let a = pool.allocate(4 * mib)
    fill(a, 4 * mib, 0xA5)
    pool.free(a, 4 * mib)
    let b = pool.allocate(7 * mib / 2)
    #expect(b == a && allEqual(b, 4 * mib, 0xA5))
    #expect(pool.liveBytes == 4 * mib, "the whole mapping is counted in use")
    pool.free(b, 7 * mib / 2)
    #expect(pool.keptBytesNow == 4 * mib && pool.liveBytes == 0)
  }

  /// A larger request grows the largest smaller kept buffer (resized in place or moved), so the
  /// pages it already touched keep their contents and cost no new fault.
  @Test func aLargerRequestGrowsAKeptBuffer() {
    let pool = HostMemory(keepLimit: 64 * mib)
    let a = pool.allocate(2 * mib)
    fill(a, 2 * mib, 0xA5)
    pool.free(a, 2 * mib)
    let larger = pool.allocate(6 * mib)
    #expect(allEqual(larger, 2 * mib, 0xA5))
    #expect(allEqual(larger + 2 * mib, 4 * mib, 0), "the grown part is fresh, zeroed memory")
    pool.free(larger, 6 * mib)
  }

  /// A much smaller request gets fresh memory and leaves a large kept buffer whole for the next
  /// large request: shrinking it would drop pages that request faults in again.
  @Test func aMuchSmallerRequestLeavesALargeKeptBufferWhole() {
    let pool = HostMemory(keepLimit: 64 * mib)
    pool.free(pool.allocate(20 * mib), 20 * mib)  // room below the high water for what follows
    let a = pool.allocate(8 * mib)
    fill(a, 8 * mib, 0xA5)
    pool.free(a, 8 * mib)
    let small = pool.allocate(2 * mib)
    #expect(small != a)
    let again = pool.allocate(8 * mib)
    #expect(again == a && allEqual(again, 8 * mib, 0xA5))
    pool.free(small, 2 * mib)
    pool.free(again, 8 * mib)
  }

  /// In use plus kept never passes the most bytes in use at once.
  @Test func keptBuffersNeverRaiseThePeak() {
    let pool = HostMemory(keepLimit: 64 * mib)
    let a = pool.allocate(8 * mib), b = pool.allocate(8 * mib)
    #expect(pool.peakBytes == 16 * mib)
    pool.free(a, 8 * mib)
    pool.free(b, 8 * mib)
    pool.resetPeak()
    #expect(pool.peakBytes == 16 * mib, "the new peak starts from what is held")
    // 12 MiB in use takes one kept buffer (resized); beside the other kept 8 it would pass the
    // high water (16), so that one is unmapped.
    let c = pool.allocate(12 * mib)
    #expect(pool.liveBytes == 12 * mib)
    #expect(pool.keptBytesNow == 0)
    #expect(pool.peakBytes == 16 * mib)
    pool.free(c, 12 * mib)
  }

  @Test func theLimitBoundsWhatIsKept() {
    let pool = HostMemory(keepLimit: 4 * mib)
    let a = pool.allocate(3 * mib), b = pool.allocate(3 * mib)
    pool.free(a, 3 * mib)
    pool.free(b, 3 * mib)
    #expect(pool.keptBytesNow == 3 * mib)
    pool.keepLimitBytes = 0
    #expect(pool.keptBytesNow == 0)
  }

  @Test func smallBuffersAreCountedButNotKept() {
    let pool = HostMemory(keepLimit: 64 * mib)
    let p = pool.allocate(1000)
    #expect(pool.liveBytes == 1000)
    #expect(Int(bitPattern: p) % 64 == 0)
    pool.free(p, 1000)
    #expect(pool.liveBytes == 0 && pool.keptBytesNow == 0)
  }
}
