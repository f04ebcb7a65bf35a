import Foundation

// A minimal pure-Swift TIFF codec for what the ISBI 2012 data uses: multi-page, 8-bit grayscale,
// uncompressed strips. It stays as the fallback when libtiff is not available.

// MARK: - Pages

/// One 8-bit grayscale image: `width * height` pixels, row-major, 0 = black.
public struct GrayImage: Sendable, Equatable {
  public let width, height: Int
  public let pixels: [UInt8]

  /// An image of `width` x `height` pixels; `TIFF.encode` checks that `pixels` has that many.
  public init(width: Int, height: Int, pixels: [UInt8]) {
    self.width = width
    self.height = height
    self.pixels = pixels
  }
}

// MARK: - Reading and writing

/// Multi-page 8-bit grayscale TIFF files: uncompressed strips; reads little- and big-endian
/// files, writes little-endian. Malformed or unsupported files throw a `DataError`.
public enum TIFF {
  /// The pages of the TIFF file at `url`, in file order (reduced-resolution pages are skipped).
  public static func read(contentsOf url: URL) throws -> [GrayImage] {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      var isDirectory: ObjCBool = false
      if !FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
        throw DataError(path: url.path, "no such file; expected a multi-page 8-bit grayscale TIFF")
      }
      if isDirectory.boolValue {
        throw DataError(path: url.path, "is a directory; expected a multi-page 8-bit grayscale TIFF file")
      }
      throw DataError(path: url.path, "cannot read: \(error.localizedDescription)")
    }
    return try decode(data, path: url.path)
  }

  /// The pages of a TIFF file held in memory; `path` names it in errors.
  public static func decode(_ data: Data, path: String = "<memory>") throws -> [GrayImage] {
    try TIFFReader(bytes: [UInt8](data), path: path).pages()
  }

  /// Writes `pages` (at least one, any sizes) to `url` as a little-endian multi-page TIFF.
  public static func write(_ pages: [GrayImage], to url: URL) throws {
    let data = try encode(pages, path: url.path)
    do {
      try data.write(to: url, options: .atomic)
    } catch {
      throw DataError(path: url.path, "cannot write: \(error.localizedDescription)")
    }
  }

  /// The bytes of a little-endian multi-page TIFF holding `pages`; `path` names it in errors.
  public static func encode(_ pages: [GrayImage], path: String = "<memory>") throws -> Data {
    try encode(pages, path: path, bigEndian: false)
  }

  /// As `encode(_:path:)`, in either byte order (big-endian output exists to test the reader).
  static func encode(_ pages: [GrayImage], path: String, bigEndian: Bool) throws -> Data {
    guard !pages.isEmpty else {
      throw DataError(path: path, "no pages to write; a TIFF file needs at least one")
    }
    var total = 8
    for (i, page) in pages.enumerated() {
      guard page.width > 0, page.height > 0, page.width <= UInt32.max, page.height <= UInt32.max else {
        throw DataError(path: path, "page \(i): cannot write a \(page.width)x\(page.height) image; sizes must be positive")
      }
      let (n, overflow) = page.width.multipliedReportingOverflow(by: page.height)
      guard !overflow, page.pixels.count == n else {
        throw DataError(path: path, "page \(i): \(page.pixels.count) pixels for a \(page.width)x\(page.height) image")
      }
      total += n + 1 + TIFFWriter.ifdSize + 8 * TIFFWriter.rowsAndStrips(page).strips + 16
    }
    guard total <= UInt32.max else {
      throw DataError(path: path, "\(total) bytes are over the 4 GiB limit of a classic TIFF file")
    }
    var writer = TIFFWriter(bigEndian: bigEndian)
    writer.bytes.reserveCapacity(total)
    writer.header()
    for page in pages { writer.append(page) }
    return Data(writer.bytes)
  }
}

// MARK: - Writer

/// Lays out each page as its pixel strips, then its IFD, then the IFD's out-of-line values,
/// chaining each IFD's next-offset to the following page.
struct TIFFWriter {
  static let entryCount = 13
  static let ifdSize = 2 + entryCount * 12 + 4
  // Field types.
  static let short = 3, long = 4, rational = 5

  var bytes: [UInt8] = []
  let bigEndian: Bool
  /// Where the offset of the next IFD is to be written: the header, then each IFD's last field.
  var link = 4

  init(bigEndian: Bool) { self.bigEndian = bigEndian }

  /// Strips of about 8 KiB, as the TIFF 6.0 specification recommends.
  static func rowsAndStrips(_ page: GrayImage) -> (rows: Int, strips: Int) {
    let rows = max(1, min(page.height, 8192 / page.width))
    return (rows, (page.height + rows - 1) / rows)
  }

  mutating func header() {
    bytes += bigEndian ? [0x4D, 0x4D] : [0x49, 0x49]
    u16(42)
    u32(0)
  }

  mutating func append(_ page: GrayImage) {
    let (rows, strips) = Self.rowsAndStrips(page)
    let start = bytes.count
    bytes += page.pixels
    if bytes.count % 2 == 1 { bytes.append(0) }  // IFDs begin on a word boundary
    let offsets = (0..<strips).map { start + $0 * rows * page.width }
    let counts = (0..<strips).map { min(rows, page.height - $0 * rows) * page.width }

    let ifd = bytes.count
    patch32(at: link, ifd)
    var extra = ifd + Self.ifdSize
    let offsetsAt = extra, countsAt = extra + 4 * strips
    if strips > 1 { extra += 8 * strips }
    let xResolutionAt = extra, yResolutionAt = extra + 8

    u16(Self.entryCount)  // entries in ascending tag order, as the specification requires
    entry(256, Self.long, 1, page.width)  // ImageWidth
    entry(257, Self.long, 1, page.height)  // ImageLength
    entry(258, Self.short, 1, 8)  // BitsPerSample
    entry(259, Self.short, 1, 1)  // Compression: none
    entry(262, Self.short, 1, 1)  // PhotometricInterpretation: BlackIsZero
    entry(273, Self.long, strips, strips > 1 ? offsetsAt : offsets[0])  // StripOffsets
    entry(277, Self.short, 1, 1)  // SamplesPerPixel
    entry(278, Self.long, 1, rows)  // RowsPerStrip
    entry(279, Self.long, strips, strips > 1 ? countsAt : counts[0])  // StripByteCounts
    entry(282, Self.rational, 1, xResolutionAt)  // XResolution
    entry(283, Self.rational, 1, yResolutionAt)  // YResolution
    entry(284, Self.short, 1, 1)  // PlanarConfiguration: chunky
    entry(296, Self.short, 1, 1)  // ResolutionUnit: none
    link = bytes.count
    u32(0)
    if strips > 1 {
      offsets.forEach { u32($0) }
      counts.forEach { u32($0) }
    }
    for _ in 0..<4 { u32(1) }  // both resolutions 1/1
  }

  /// One IFD entry; `value` is the value itself when it fits in 4 bytes, else its offset.
  private mutating func entry(_ tag: Int, _ type: Int, _ count: Int, _ value: Int) {
    u16(tag)
    u16(type)
    u32(count)
    if type == Self.short && count == 1 {
      u16(value)  // left-justified in the 4-byte field
      u16(0)
    } else {
      u32(value)
    }
  }

  private mutating func u16(_ v: Int) {
    let v = UInt16(truncatingIfNeeded: v)
    bytes += bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)]
  }

  private mutating func u32(_ v: Int) {
    bytes += Self.bytes32(v, bigEndian: bigEndian)
  }

  private mutating func patch32(at offset: Int, _ v: Int) {
    bytes.replaceSubrange(offset..<offset + 4, with: Self.bytes32(v, bigEndian: bigEndian))
  }

  private static func bytes32(_ v: Int, bigEndian: Bool) -> [UInt8] {
    let v = UInt32(truncatingIfNeeded: v)
    let little = [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
    return bigEndian ? little.reversed() : little
  }
}
