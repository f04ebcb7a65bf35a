import Foundation
import Testing

@testable import SegData

// MARK: - Codecs libtiff lacks

@Suite struct TIFFCodecTests {
  /// A 7x5 file claiming to be 30000x30000 pixels (900 MB decoded) under `compression`.
  func forged(compression: Int) throws -> [UInt8] {
    var file = LittleEndianTIFF(bytes: [UInt8](try TIFF.encode([DataFixture.page(7, 5)])))
    file.patch(tag: 256, 30000)
    file.patch(tag: 257, 30000)
    file.patch(tag: 259, compression)
    return file.bytes
  }

  /// Refused with the file's name and the codec before the page's pixels are allocated (the
  /// reader's messages about strips and decoding come only after that allocation).
  @Test(arguments: [(34712, "JPEG 2000"), (65000, "unknown")])
  func aCodecLibTIFFLacksIsNamedBeforeThePixelsAreAllocated(_ codec: (Int, String)) throws {
    try expectTIFFReadError(try forged(compression: codec.0),
                            "page 0: compression \(codec.0) (\(codec.1)) is not one this build of libtiff can decode")
  }

  /// Codecs libtiff has keep reading as before.
  @Test func configuredCodecsStillRead() throws {
    for compression in TIFFCompression.allCases {
      let page = DataFixture.page(7, 5)
      #expect(try TIFF.decode(TIFF.encode([page], compression: compression)) == [page])
    }
  }
}
