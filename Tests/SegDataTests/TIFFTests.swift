import Foundation
import Testing

@testable import SegData

// MARK: - Helpers

/// Shared helpers of the SegData tests: sample pages, scratch directories, Python.
enum DataFixture {
  /// A page of deterministic, varied pixels.
  static func page(_ width: Int, _ height: Int, seed: Int = 0) -> GrayImage {
    GrayImage(width: width, height: height, pixels: (0..<width * height).map {
      UInt8(truncatingIfNeeded: ($0 &* 37 &+ seed &* 101) ^ ($0 >> 3))
    })
  }

  /// A fresh empty directory under the temporary directory; delete it with `remove`.
  static func scratchDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("segdata-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  static func remove(_ url: URL) { try? FileManager.default.removeItem(at: url) }

  /// Runs `python3` with `arguments`; status -1 when it cannot start.
  static func python(_ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return (-1, "\(error)") }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
  }

  /// Whether Python's tifffile (and numpy) can be imported here.
  static let hasTifffile = python(["-c", "import numpy, tifffile"]).status == 0
}

/// Little-endian field access in a file written by `TIFF.encode`.
struct LittleEndianTIFF {
  var bytes: [UInt8]

  func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
  func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
  mutating func set16(_ o: Int, _ v: Int) { bytes[o] = UInt8(v & 0xFF); bytes[o + 1] = UInt8(v >> 8 & 0xFF) }
  mutating func set32(_ o: Int, _ v: Int) { set16(o, v & 0xFFFF); set16(o + 2, v >> 16 & 0xFFFF) }

  var firstIFD: Int { u32(4) }

  /// The offset of the entry for `tag` in the first IFD.
  func entry(_ tag: Int) -> Int {
    let ifd = firstIFD
    let e = (0..<u16(ifd)).map { ifd + 2 + $0 * 12 }.first { u16($0) == tag }
    return e!
  }

  /// Overwrites the value of a one-value SHORT or LONG entry (or the offset of a longer one).
  mutating func patch(tag: Int, _ value: Int) {
    let e = entry(tag)
    if u16(e + 2) == 3 && u32(e + 4) == 1 { set16(e + 8, value) } else { set32(e + 8, value) }
  }
}

/// Writes `bytes` to a file, reads it back and checks for a DataError naming that file whose
/// reason contains `fragment`.
func expectTIFFReadError(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
  let dir = try DataFixture.scratchDirectory()
  defer { DataFixture.remove(dir) }
  let url = dir.appendingPathComponent("bad.tif")
  try Data(bytes).write(to: url)
  do {
    let pages = try TIFF.read(contentsOf: url)
    Issue.record("read \(pages.count) pages, expected an error containing \"\(fragment)\"", sourceLocation: sourceLocation)
  } catch let error as DataError {
    #expect(error.path == url.path, sourceLocation: sourceLocation)
    #expect(error.description.contains("bad.tif"), sourceLocation: sourceLocation)
    #expect(error.reason.contains(fragment), "\(error)", sourceLocation: sourceLocation)
  }
}

// MARK: - Round trips

@Suite struct TIFFRoundTripTests {
  @Test func onePage() throws {
    let page = DataFixture.page(16, 16)
    let data = try TIFF.encode([page])
    #expect(Array(data.prefix(4)) == [0x49, 0x49, 42, 0])
    #expect(try TIFF.decode(data) == [page])
  }

  @Test func severalPagesOfOddAndMixedSizesThroughAFile() throws {
    // 300x40 and 9000x2 span several strips; 9000 is wider than one 8 KiB strip.
    let pages = [DataFixture.page(7, 5, seed: 1), DataFixture.page(7, 5, seed: 2), DataFixture.page(1, 1, seed: 3),
                 DataFixture.page(300, 40, seed: 4), DataFixture.page(9000, 2, seed: 5), DataFixture.page(3, 11, seed: 6)]
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    let url = dir.appendingPathComponent("pages.tif")
    try TIFF.write(pages, to: url)
    #expect(try TIFF.read(contentsOf: url) == pages)
  }

  @Test func bigEndianFilesRead() throws {
    let pages = [DataFixture.page(7, 5, seed: 1), DataFixture.page(300, 40, seed: 2)]
    let data = try TIFF.encode(pages, path: "be.tif", bigEndian: true)
    #expect(Array(data.prefix(4)) == [0x4D, 0x4D, 0, 42])
    #expect(try TIFF.decode(data) == pages)
  }

  @Test func whiteIsZeroPagesAreInverted() throws {
    let page = DataFixture.page(7, 5)
    var file = LittleEndianTIFF(bytes: [UInt8](try TIFF.encode([page])))
    file.patch(tag: 262, 0)
    let read = try TIFF.decode(Data(file.bytes))
    #expect(read[0].pixels == page.pixels.map { 255 - $0 })
  }

  @Test func writerRejectsBadPages() {
    #expect(throws: DataError.self) { try TIFF.encode([]) }
    #expect(throws: DataError.self) { try TIFF.encode([GrayImage(width: 3, height: 2, pixels: [1, 2])]) }
    #expect(throws: DataError.self) { try TIFF.encode([GrayImage(width: 0, height: 2, pixels: [])]) }
  }
}

// MARK: - Malformed input

@Suite struct TIFFMalformedTests {
  let valid = LittleEndianTIFF(bytes: [UInt8](try! TIFF.encode([DataFixture.page(7, 5)])))

  @Test func emptyShortAndWrongMagic() throws {
    try expectTIFFReadError([], "empty file")
    try expectTIFFReadError([0x49, 0x49, 42], "truncated")
    try expectTIFFReadError(Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8), "not a TIFF file")
    try expectTIFFReadError([0x49, 0x49, 43, 0, 8, 0, 0, 0], "BigTIFF")
    try expectTIFFReadError([0x49, 0x49, 41, 0, 8, 0, 0, 0], "version 41")
  }

  @Test func missingFileIsNamed() throws {
    let url = URL(fileURLWithPath: "/nonexistent-dir/none.tif")
    #expect { try TIFF.read(contentsOf: url) } throws: { error in
      (error as? DataError)?.path == url.path && "\(error)".contains("no such file")
    }
  }

  @Test func truncatedIFD() throws {
    try expectTIFFReadError(Array(valid.bytes[..<(valid.firstIFD + 20)]), "truncated: the IFD of page 0")
    var beyond = valid
    beyond.set32(4, valid.bytes.count + 100)
    try expectTIFFReadError(beyond.bytes, "truncated")
  }

  @Test func stripOffsetBeyondTheEnd() throws {
    var file = valid
    file.patch(tag: 273, file.bytes.count - 10)
    try expectTIFFReadError(file.bytes, "strip 0 at offset")
    file.patch(tag: 273, 0xFFFF_FFF0)
    try expectTIFFReadError(file.bytes, "past the end of the file")
  }

  @Test func unsupportedPages() throws {
    var file = valid
    file.patch(tag: 258, 16)
    try expectTIFFReadError(file.bytes, "unsupported bit depth 16; only 8 bits")
    file = valid
    file.patch(tag: 259, 5)
    try expectTIFFReadError(file.bytes, "unsupported compression 5 (LZW); only 1 (uncompressed)")
    file = valid
    file.patch(tag: 277, 3)
    try expectTIFFReadError(file.bytes, "unsupported samples per pixel 3")
    file = valid
    file.patch(tag: 262, 2)
    try expectTIFFReadError(file.bytes, "photometric interpretation 2 (RGB)")
  }

  @Test func forgedSizesAndCounts() throws {
    var file = valid
    file.patch(tag: 256, 0xFFFF_FFFF)
    try expectTIFFReadError(file.bytes, "more than the file's")
    file = valid
    file.patch(tag: 257, 0)
    try expectTIFFReadError(file.bytes, "must be positive")
    file = valid
    file.patch(tag: 279, 20)
    try expectTIFFReadError(file.bytes, "strip 0 holds 20 bytes, expected 35")
    file = valid
    file.set32(file.entry(273) + 4, 1_000_000)  // a million strip offsets stored past the end
    try expectTIFFReadError(file.bytes, "values of StripOffsets")
    file = valid
    file.patch(tag: 278, 0)
    try expectTIFFReadError(file.bytes, "RowsPerStrip is 0")
  }

  @Test func ifdLoop() throws {
    var file = valid
    let ifd = file.firstIFD
    file.set32(ifd + 2 + file.u16(ifd) * 12, ifd)
    try expectTIFFReadError(file.bytes, "links back")
  }

  /// Every prefix and many random corruptions either read or throw a DataError: never a trap.
  @Test func corruptionNeverTraps() throws {
    let bytes = [UInt8](try TIFF.encode([DataFixture.page(7, 5), DataFixture.page(3, 300, seed: 1)]))
    for n in 0..<bytes.count {
      // Only the last page's resolution values (16 bytes, unused) may be cut off.
      if n < bytes.count - 16 {
        #expect(throws: DataError.self) { try TIFF.decode(Data(bytes[..<n])) }
      } else {
        #expect(try TIFF.decode(Data(bytes[..<n])).count == 2)
      }
    }
    var rng = Mixer(seed: 1)  // seeded, so a failure reproduces
    let file = LittleEndianTIFF(bytes: bytes)
    let ifds = [file.firstIFD, file.u32(file.firstIFD + 2 + file.u16(file.firstIFD) * 12)]
    for _ in 0..<3000 {
      var copy = bytes
      for _ in 0..<Int.random(in: 1...4, using: &rng) {
        // Mostly in the header and the IFDs with their values, where corruption matters.
        let at = switch Int.random(in: 0..<4, using: &rng) {
        case 0: Int.random(in: 0..<8, using: &rng)
        case 1, 2: ifds.randomElement(using: &rng)! + Int.random(in: 0..<180, using: &rng)
        default: Int.random(in: 0..<copy.count, using: &rng)
        }
        copy[min(at, copy.count - 1)] = UInt8.random(in: 0...255, using: &rng)
      }
      do { _ = try TIFF.decode(Data(copy)) } catch is DataError {} catch { Issue.record("unexpected \(error)") }
    }
  }
}
