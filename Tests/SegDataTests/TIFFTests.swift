import Foundation
import SegCore
import Testing

@testable import SegData

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
                 DataFixture.page(300, 400, seed: 4), DataFixture.page(9000, 2, seed: 5), DataFixture.page(3, 11, seed: 6)]
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    for compression in TIFFCompression.allCases {
      let url = dir.appendingPathComponent("pages-\(compression).tif")
      try TIFF.write(pages, to: url, compression: compression)
      #expect(try TIFF.read(contentsOf: url) == pages, "\(compression)")
    }
  }

  /// Every depth and channel count, through every compression, in strips and in tiles (whose
  /// 16x16 grid leaves partial tiles at the right and bottom).
  @Test(arguments: TIFFCompression.allCases)
  func everyKindOfPage(compression: TIFFCompression) throws {
    let pages = [DataFixture.ramp(37, 21, channels: 1, bitDepth: 8), DataFixture.ramp(37, 21, channels: 3, bitDepth: 8, k: 3),
                 DataFixture.ramp(19, 40, channels: 1, bitDepth: 16, k: 4099), DataFixture.ramp(5, 3, channels: 3, bitDepth: 16, k: 977)]
    for tileSize in [nil, 16] {
      let data = try TIFF.encode(pages, compression: compression, tileSize: tileSize)
      #expect(try TIFF.decodeImages(data) == pages, "\(compression), tiles \(tileSize ?? 0)")
      // One page per file too, so that a failure names the kind.
      for page in pages {
        #expect(try TIFF.decodeImages(TIFF.encode([page], compression: compression, tileSize: tileSize)) == [page],
                "\(page.bitDepth)-bit, \(page.channels) channel(s), \(compression), tiles \(tileSize ?? 0)")
      }
    }
  }

  @Test func bigEndianFilesRead() throws {
    let pages = [DataFixture.page(7, 5, seed: 1), DataFixture.page(300, 40, seed: 2)]
    let data = try TIFF.encode(pages, path: "be.tif", bigEndian: true)
    #expect(Array(data.prefix(4)) == [0x4D, 0x4D, 0, 42])
    #expect(try TIFF.decode(data) == pages)
    let wide = [DataFixture.ramp(9, 4, channels: 3, bitDepth: 16, k: 4099)]
    let be16 = try TIFF.encode(wide, path: "be16.tif", compression: .deflate, tileSize: nil, bigEndian: true)
    #expect(try TIFF.decodeImages(be16) == wide)
  }

  @Test func whiteIsZeroPagesAreInverted() throws {
    let page = DataFixture.page(7, 5)
    var file = LittleEndianTIFF(bytes: [UInt8](try TIFF.encode([page])))
    file.patch(tag: 262, 0)
    let read = try TIFF.decode(Data(file.bytes))
    #expect(read[0].pixels == page.pixels.map { 255 - $0 })
  }

  @Test func grayReaderRejectsOtherPages() throws {
    let data = try TIFF.encode([DataFixture.ramp(4, 4), DataFixture.ramp(4, 4, bitDepth: 16)])
    #expect { try TIFF.decode(data, path: "x.tif") } throws: {
      "\($0)" == "x.tif: page 1 is 16-bit grayscale; expected 8-bit grayscale pages here"
    }
    #expect(try TIFF.decodeImages(data).count == 2)
  }

  @Test func writerRejectsBadPages() throws {
    #expect(throws: DataError.self) { try TIFF.encode([GrayImage]()) }
    #expect(throws: DataError.self) { try TIFF.encode([GrayImage(width: 3, height: 2, pixels: [1, 2])]) }
    #expect(throws: DataError.self) { try TIFF.encode([GrayImage(width: 0, height: 2, pixels: [])]) }
    #expect { try TIFF.encode([DataFixture.ramp(4, 4)], path: "t.tif", tileSize: 10) } throws: {
      "\($0)".contains("t.tif: tile size 10")
    }
  }

  @Test func imageChecksItsDescription() {
    #expect(throws: DataError.self) { try Image(width: 2, height: 2, channels: 2, bitDepth: 8, samples: [0, 0, 0, 0, 0, 0, 0, 0]) }
    #expect(throws: DataError.self) { try Image(width: 2, height: 2, channels: 1, bitDepth: 12, samples: [0, 0, 0, 0]) }
    #expect { try Image(width: 2, height: 1, channels: 1, bitDepth: 8, samples: [0, 256]) } throws: {
      "\($0)".contains("sample 256 at x 1, y 0")
    }
  }

  @Test func conversions() throws {
    let rgb = try Image(width: 2, height: 1, channels: 3, bitDepth: 8, samples: [255, 0, 0, 10, 20, 30])
    // Pillow's L: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16.
    #expect(rgb.converted(channels: 1).samples == [76, 18])
    #expect(rgb.converted(channels: 1).converted(channels: 3).samples == [76, 76, 76, 18, 18, 18])
    let deep = rgb.converted(bitDepth: 16)
    #expect(deep.samples == [65535, 0, 0, 2570, 5140, 7710] && deep.converted(bitDepth: 8) == rgb)
    #expect(rgb.grayImage() == GrayImage(width: 2, height: 1, pixels: [76, 18]))
    #expect(rgb.scaledSamples()[0] == 1 && rgb.scaledSamples()[1] == -1)
  }
}

// MARK: - Malformed input

@Suite struct TIFFMalformedTests {
  let valid = LittleEndianTIFF(bytes: [UInt8](try! TIFF.encode([DataFixture.page(7, 5)])))

  @Test func emptyShortAndWrongMagic() throws {
    try expectTIFFReadError([], "empty file")
    try expectTIFFReadError([0x49, 0x49, 42], "Cannot read TIFF header")
    try expectTIFFReadError(Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8), "Not a TIFF")
    try expectTIFFReadError([0x49, 0x49, 43, 0, 8, 0, 0, 0], "Cannot read TIFF header")
    try expectTIFFReadError([0x49, 0x49, 41, 0, 8, 0, 0, 0], "bad version number 41")
  }

  @Test func missingFileIsNamed() throws {
    let url = URL(fileURLWithPath: "/nonexistent-dir/none.tif")
    #expect { try TIFF.read(contentsOf: url) } throws: { error in
      (error as? DataError)?.path == url.path && "\(error)".contains("no such file")
    }
  }

  @Test func truncatedIFD() throws {
    try expectTIFFReadError(Array(valid.bytes[..<(valid.firstIFD + 20)]), "libtiff")
    var beyond = valid
    beyond.set32(4, valid.bytes.count + 100)
    try expectTIFFReadError(beyond.bytes, "libtiff")
  }

  @Test func stripOffsetBeyondTheEnd() throws {
    var file = valid
    file.patch(tag: 273, file.bytes.count - 10)
    try expectTIFFReadError(file.bytes, "page 0: strip 0: libtiff")
    file.patch(tag: 273, 0xFFFF_FFF0)
    try expectTIFFReadError(file.bytes, "page 0: strip 0: libtiff")
  }

  @Test func unsupportedPages() throws {
    var file = valid
    file.patch(tag: 258, 12)
    try expectTIFFReadError(file.bytes, "page 0: unsupported bit depth 12; only 8 and 16 bits")
    file = valid
    file.patch(tag: 262, 5)
    try expectTIFFReadError(file.bytes, "page 0: unsupported photometric interpretation 5 (CMYK)")
    file = valid
    file.patch(tag: 259, 5)  // uncompressed bytes are not an LZW stream
    try expectTIFFReadError(file.bytes, "page 0: strip 0: libtiff")
  }

  @Test func forgedSizesAndCounts() throws {
    var file = valid
    file.patch(tag: 256, 0xFFFF_FFFF)
    try expectTIFFReadError(file.bytes, "file can hold")
    file = valid
    file.patch(tag: 257, 0)
    try expectTIFFReadError(file.bytes, "libtiff")
    file = valid
    file.patch(tag: 279, 20)
    // libtiff recognises a too-small byte count of a single uncompressed strip and reads the whole strip.
    #expect(try TIFF.decode(Data(file.bytes)) == [DataFixture.page(7, 5)])
    file = valid
    file.set32(file.entry(273) + 4, 1_000_000)  // a million strip offsets stored past the end
    try expectTIFFReadError(file.bytes, "libtiff")
  }

  @Test func ifdLoop() throws {
    let two = LittleEndianTIFF(bytes: [UInt8](try TIFF.encode([DataFixture.page(7, 5), DataFixture.page(3, 3)])))
    var file = two
    let ifd = file.firstIFD
    let second = file.u32(ifd + 2 + file.u16(ifd) * 12)
    file.set32(second + 2 + file.u16(second) * 12, ifd)  // page 1 links back to page 0
    try expectTIFFReadError(file.bytes, "page 2: libtiff did not read the IFD at offset \(ifd) that page 1 links to")
  }

  /// Every prefix and many random corruptions either read or throw a DataError: never a trap,
  /// and a prefix that reads gives the original pixels.
  @Test func corruptionNeverTraps() throws {
    let pages = [DataFixture.page(7, 5), DataFixture.page(3, 300, seed: 1)]
    let bytes = [UInt8](try TIFF.encode(pages, compression: .deflate))
    var failures = 0
    for n in 0..<bytes.count {
      do {
        #expect(try TIFF.decode(Data(bytes[..<n])) == pages, "prefix of \(n) bytes")
      } catch is DataError {
        failures += 1
      }
    }
    #expect(failures > bytes.count / 2)
    var rng = SplitMix64(seed: 1)  // seeded, so a failure reproduces
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
      do { _ = try TIFF.decodeImages(Data(copy)) } catch is DataError {} catch { Issue.record("unexpected \(error)") }
    }
  }
}
