import Foundation
import SegCore
import Testing

@testable import SegData

// MARK: - Round trips

@Suite struct PNGRoundTripTests {
  static let kinds = [
    DataFixture.ramp(37, 21, channels: 1, bitDepth: 8), DataFixture.ramp(37, 21, channels: 3, bitDepth: 8, k: 3),
    DataFixture.ramp(19, 40, channels: 1, bitDepth: 16, k: 4099), DataFixture.ramp(5, 3, channels: 3, bitDepth: 16, k: 977),
    DataFixture.ramp(1, 1),
  ]

  @Test(arguments: kinds)
  func everyDepthAndChannelCount(image: Image) throws {
    let data = try PNG.encode(image)
    #expect(Array(data.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    #expect(try PNG.decode(data) == image)
  }

  @Test func throughFilesAndImageFile() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    for (i, image) in Self.kinds.enumerated() {
      let png = dir.appendingPathComponent("\(i).png"), tif = dir.appendingPathComponent("\(i).tiff")
      try PNG.write(image, to: png)
      #expect(try PNG.read(contentsOf: png) == image)
      try ImageFile.write(image, to: tif)
      #expect(try ImageFile.read(contentsOf: tif) == image)
      // The format comes from the bytes, not the name.
      let misnamed = dir.appendingPathComponent("\(i)-really-png.tif")
      try FileManager.default.copyItem(at: png, to: misnamed)
      #expect(try ImageFile.read(contentsOf: misnamed) == image)
    }
    #expect { try ImageFile.write(Self.kinds[0], to: dir.appendingPathComponent("x.jpg")) } throws: {
      "\($0)".contains("unknown extension \".jpg\"")
    }
  }

  @Test func alphaIsDroppedAndPremultipliedSixteenBitRestored() {
    // 16-bit RGBA from the simplified API is premultiplied: 30000 at alpha 32768 was about 60000.
    let out = PNG.dropAlpha([30000, 65535, 0, 32768, 7, 8, 9, 65535], channels: 4, premultiplied: true)
    #expect(out[0] == 59999 || out[0] == 60000)
    #expect(out[1] == 65535 && out[2] == 0 && Array(out[3...]) == [7, 8, 9])
    #expect(PNG.dropAlpha([10, 0, 20, 255], channels: 2, premultiplied: false) == [10, 20])
  }

  @Test func colourChunksAreDroppedBeforeIDATOnly() {
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
      [0, 0, 0, UInt8(data.count)] + Array(type.utf8) + data + [0, 0, 0, 0]
    }
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    let ihdr = chunk("IHDR", Array(repeating: 1, count: 13)), idat = chunk("IDAT", [1, 2, 3]), end = chunk("IEND", [])
    let file = signature + ihdr + chunk("gAMA", [0, 1, 0x86, 0xA0]) + chunk("sRGB", [0]) + chunk("iCCP", [1, 2])
      + chunk("cHRM", [1]) + chunk("tEXt", [65]) + idat + chunk("gAMA", [1]) + end
    #expect(PNG.withoutColourChunks(file) == signature + ihdr + chunk("tEXt", [65]) + idat + chunk("gAMA", [1]) + end)
    // A chunk running past the end leaves the rest for libpng to report.
    let cut = Array(file.prefix(40))
    #expect(PNG.withoutColourChunks(cut) == signature + ihdr + Array(cut[33...]))
  }
}

// MARK: - Malformed input

@Suite struct PNGMalformedTests {
  func expectPNGError(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    try expectReadError(bytes, name: "bad.png", fragment, sourceLocation: sourceLocation) { try PNG.read(contentsOf: $0) }
    try expectReadError(bytes, name: "bad.png", fragment, sourceLocation: sourceLocation) { try ImageFile.read(contentsOf: $0) }
  }

  @Test func emptyAndNotPNG() throws {
    try expectPNGError([], "empty file")
    try expectReadError(Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8), name: "bad.png", "not a readable PNG file: libpng: ") {
      try PNG.read(contentsOf: $0)
    }
    try expectReadError(Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8), name: "bad.png", "not a PNG or TIFF file: it starts with bytes 0x47 0x49 0x46 0x38") {
      try ImageFile.read(contentsOf: $0)
    }
    #expect { try PNG.read(contentsOf: URL(fileURLWithPath: "/nonexistent-dir/x.png")) } throws: {
      "\($0)" == "/nonexistent-dir/x.png: no such file; expected a PNG file"
    }
  }

  @Test func corruptedImageData() throws {
    var bytes = [UInt8](try PNG.encode(DataFixture.ramp(37, 21, channels: 3)))
    let idat = (8..<bytes.count - 4).first { bytes[$0..<$0 + 4] == [73, 68, 65, 84] }!  // "IDAT"
    bytes[idat + 10] ^= 0xFF  // the chunk's CRC no longer matches
    try expectPNGError(bytes, "cannot decode: libpng: ")
  }

  @Test func forgedHugeSize() throws {
    var bytes = [UInt8](try PNG.encode(DataFixture.ramp(4, 4)))
    bytes.replaceSubrange(16..<24, with: [0, 0x0F, 0x42, 0x40, 0, 0x0F, 0x42, 0x40])  // 1000000 x 1000000
    try expectPNGError(bytes, "libpng")
  }

  /// A chunk before the image data whose length field claims more than the file holds (found by
  /// fuzzing: 183 bytes with a zTXt of 1.4 GB) is refused by name before libpng allocates and
  /// zeroes a buffer of that size; one after the image data is never read, as before.
  @Test func chunkLengthPastTheEndIsRefusedBeforeLibpngAllocatesIt() throws {
    let image = DataFixture.ramp(4, 4)
    let bytes = [UInt8](try PNG.encode(image))
    let idat = (8..<bytes.count - 4).first { bytes[$0 + 4..<$0 + 8] == [73, 68, 65, 84] }!  // "IDAT"
    let huge: [UInt8] = [0x77, 0x35, 0x94, 0x00]  // 2000000000
    for type in ["zTXt", "tEXt", "iCCP", "abCd"] {
      let forged = Array(bytes[..<idat]) + huge + Array(type.utf8) + Array(repeating: 7, count: 20)
      try expectPNGError(forged, "damaged or truncated PNG file: chunk \"\(type)\" at byte \(idat) claims 2000000000 bytes")
    }
    let binaryType = Array(bytes[..<33]) + huge + [0, 1, 2, 3] + [9, 9, 9, 9]
    try expectPNGError(binaryType, "chunk of type 0x00010203 at byte 33 claims 2000000000 bytes of data and a 4-byte CRC, but only 4 bytes")
    // Data that fits but leaves no room for the CRC is cut too.
    let ihdrWithoutCRC = Array(bytes[..<29])
    #expect(PNG.chunkOverrun(ihdrWithoutCRC) == "damaged or truncated PNG file: chunk \"IHDR\" at byte 8 claims 13 bytes of data "
      + "and a 4-byte CRC, but only 13 bytes follow its header")
    // After the image data the simplified API reads nothing more: such a file still reads.
    let end = bytes.count - 12  // IEND
    #expect(try PNG.decode(Data(Array(bytes[..<end]) + huge + Array("tEXt".utf8) + [1, 2, 3])) == image)
    #expect(PNG.chunkOverrun(bytes) == nil)
  }

  /// Every prefix either throws a DataError or reads the whole image, and random corruption never traps.
  @Test func truncationAndCorruptionNeverTrap() throws {
    let image = DataFixture.ramp(9, 7, channels: 3, bitDepth: 16, k: 977)
    let bytes = [UInt8](try PNG.encode(image))
    for n in 0..<bytes.count {
      do {
        #expect(try PNG.decode(Data(bytes[..<n])) == image, "prefix of \(n) bytes")
      } catch is DataError {}
    }
    // The simplified API stops after the image data: a file cut only in IEND still has all its pixels.
    #expect(try PNG.decode(Data(bytes.dropLast(12))) == image)
    #expect(throws: DataError.self) { try PNG.decode(Data(bytes.dropLast(30))) }
    var rng = SplitMix64(seed: 2)
    for _ in 0..<2000 {
      var copy = bytes
      for _ in 0..<Int.random(in: 1...4, using: &rng) {
        copy[Int.random(in: 0..<min(copy.count, 64), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      do { _ = try PNG.decode(Data(copy)) } catch is DataError {} catch { Issue.record("unexpected \(error)") }
    }
  }
}

// MARK: - Threads

/// The data pipeline decodes on worker threads: libtiff's per-file handlers and libpng's
/// png_image share no state, so concurrent reads (good and bad files) each get their own result.
@Suite struct ImageReadersInParallelTests {
  @Test func concurrentReadsAndErrorsStayApart() throws {
    let image = DataFixture.ramp(33, 17, channels: 3, bitDepth: 16, k: 977)
    let tiff = try TIFF.encode([image], compression: .lzw), png = try PNG.encode(image)
    let badTIFF = tiff.prefix(tiff.count / 2), badPNG = png.prefix(png.count / 2)
    // Each iteration writes only its own element.
    nonisolated(unsafe) let results = UnsafeMutableBufferPointer<String>.allocate(capacity: 64)
    defer { results.deallocate() }
    _ = results.initialize(from: repeatElement("", count: 64))
    DispatchQueue.concurrentPerform(iterations: 64) { i in
      do {
        let got = switch i % 4 {
        case 0: try TIFF.decodeImages(tiff, path: "\(i).tif")[0]
        case 1: try PNG.decode(png, path: "\(i).png")
        case 2: try TIFF.decodeImages(badTIFF, path: "\(i).tif")[0]
        default: try PNG.decode(badPNG, path: "\(i).png")
        }
        results[i] = got == image ? "ok" : "wrong pixels"
      } catch {
        results[i] = "\(error)"
      }
    }
    for i in 0..<64 {
      if i % 4 < 2 {
        #expect(results[i] == "ok", "\(i)")
      } else {
        #expect(results[i].hasPrefix("\(i).\(i % 4 == 2 ? "tif" : "png"): ") && results[i].contains(i % 4 == 2 ? "libtiff" : "libpng"),
                "\(i): \(results[i])")
      }
    }
  }
}
