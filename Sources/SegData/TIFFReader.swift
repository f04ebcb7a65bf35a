import Foundation

// MARK: - Reader

/// Parses a classic TIFF file held in memory. Every offset read from the file is checked against
/// its size before use, so malformed input throws a `DataError` rather than trapping.
struct TIFFReader {
  let bytes: [UInt8]
  let path: String
  let bigEndian: Bool
  private(set) var firstIFD: Int

  /// One IFD entry: its field type, value count and where its value field sits.
  struct Entry {
    let type: Int
    let count: Int
    let field: Int
  }

  /// A parsed image file directory: its entries by tag and the offset of the next one.
  struct Directory {
    let entries: [Int: Entry]
    let next: Int
  }

  init(bytes: [UInt8], path: String) throws {
    self.bytes = bytes
    self.path = path
    guard !bytes.isEmpty else { throw DataError(path: path, "empty file; expected a TIFF file") }
    guard bytes.count >= 8 else {
      throw DataError(path: path, "truncated: \(bytes.count) bytes, shorter than the 8-byte TIFF header")
    }
    switch (bytes[0], bytes[1]) {
    case (0x49, 0x49): bigEndian = false
    case (0x4D, 0x4D): bigEndian = true
    default:
      throw DataError(path: path, "not a TIFF file: it starts with bytes \(hex(bytes[0])) \(hex(bytes[1])), "
        + "expected the byte-order mark \"II\" or \"MM\"")
    }
    firstIFD = 0
    let version = try u16(2, "the header")
    if version == 43 {
      throw DataError(path: path, "BigTIFF (version 43) is not supported, only classic TIFF (version 42)")
    }
    guard version == 42 else {
      throw DataError(path: path, "not a TIFF file: version \(version) after the byte-order mark, expected 42")
    }
    firstIFD = try u32(4, "the header")
  }

  /// All full-resolution pages, following the chain of IFDs.
  func pages() throws -> [GrayImage] {
    guard firstIFD != 0 else { throw DataError(path: path, "no pages: the header's first IFD offset is 0") }
    var pages: [GrayImage] = []
    var seen = Set<Int>()
    var offset = firstIFD, index = 0
    while offset != 0 {
      guard seen.insert(offset).inserted else {
        throw DataError(path: path, "the IFD of page \(index - 1) links back to offset \(offset), an earlier page")
      }
      let directory = try self.directory(at: offset, page: index)
      if let page = try image(directory, page: index) { pages.append(page) }
      offset = directory.next
      index += 1
    }
    guard !pages.isEmpty else { throw DataError(path: path, "no full-resolution pages") }
    return pages
  }

  // MARK: - Structure

  func directory(at offset: Int, page: Int) throws -> Directory {
    let count = try u16(offset, "the IFD of page \(page)")
    let end = offset + 2 + count * 12 + 4
    guard end <= bytes.count else {
      throw DataError(path: path, "truncated: the IFD of page \(page) at offset \(offset) has \(count) entries "
        + "and ends at byte \(end), past the end of the file (\(bytes.count) bytes)")
    }
    var entries: [Int: Entry] = [:]
    for i in 0..<count {
      let e = offset + 2 + i * 12
      entries[try u16(e, "an IFD entry")] = Entry(
        type: try u16(e + 2, "an IFD entry"), count: try u32(e + 4, "an IFD entry"), field: e + 8)
    }
    return Directory(entries: entries, next: try u32(offset + 2 + count * 12, "an IFD"))
  }

  /// The integer values of an entry (BYTE, SHORT or LONG), or nil when the tag is absent.
  func values(_ tag: TIFFTag, in directory: Directory, page: Int) throws -> [Int]? {
    guard let e = directory.entries[tag.rawValue] else { return nil }
    let size: Int
    switch e.type {
    case 1: size = 1
    case 3: size = 2
    case 4: size = 4
    default:
      throw DataError(path: path, "page \(page): \(tag) (tag \(tag.rawValue)) has field type \(e.type), "
        + "expected 1 (BYTE), 3 (SHORT) or 4 (LONG)")
    }
    guard e.count > 0 else { throw DataError(path: path, "page \(page): \(tag) (tag \(tag.rawValue)) has no values") }
    let length = e.count * size
    let start = length <= 4 ? e.field : try u32(e.field, "\(tag)")
    guard start + length <= bytes.count else {
      throw DataError(path: path, "truncated: page \(page): the \(e.count) values of \(tag) (tag \(tag.rawValue)) "
        + "at offset \(start) run past the end of the file (\(bytes.count) bytes)")
    }
    return try (0..<e.count).map { i in
      let at = start + i * size
      switch size {
      case 1: return Int(bytes[at])
      case 2: return try u16(at, "\(tag)")
      default: return try u32(at, "\(tag)")
      }
    }
  }

  /// The first value of an entry, `fallback` when absent (the specification's default).
  func scalar(_ tag: TIFFTag, in directory: Directory, page: Int, default fallback: Int? = nil) throws -> Int {
    if let v = try values(tag, in: directory, page: page) { return v[0] }
    if let fallback { return fallback }
    throw DataError(path: path, "page \(page): missing \(tag) (tag \(tag.rawValue))")
  }

  // MARK: - Pixels

  /// The page's pixels, or nil for a reduced-resolution page (a thumbnail or pyramid level).
  func image(_ d: Directory, page: Int) throws -> GrayImage? {
    if let kind = try values(.newSubfileType, in: d, page: page)?.first, kind & 1 != 0 { return nil }
    func unsupported(_ what: String) -> DataError { DataError(path: path, "page \(page): unsupported \(what)") }

    let width = try scalar(.imageWidth, in: d, page: page)
    let height = try scalar(.imageLength, in: d, page: page)
    guard width > 0, height > 0 else {
      throw DataError(path: path, "page \(page): image size \(width)x\(height); width and height must be positive")
    }
    let samples = try scalar(.samplesPerPixel, in: d, page: page, default: 1)
    guard samples == 1 else { throw unsupported("samples per pixel \(samples); only 1 (grayscale) is supported") }
    let bits = try values(.bitsPerSample, in: d, page: page) ?? [1]
    guard bits.allSatisfy({ $0 == 8 }) else {
      throw unsupported("bit depth \(bits.first { $0 != 8 }!); only 8 bits per sample is supported")
    }
    let compression = try scalar(.compression, in: d, page: page, default: 1)
    guard compression == 1 else {
      throw unsupported("compression \(compression) (\(Self.compressionName(compression))); only 1 (uncompressed) is supported")
    }
    let photometric = try scalar(.photometric, in: d, page: page, default: 1)
    guard photometric == 0 || photometric == 1 else {
      throw unsupported("photometric interpretation \(photometric) (\(Self.photometricName(photometric))); "
        + "only grayscale, 0 (WhiteIsZero) or 1 (BlackIsZero), is supported")
    }
    let formats = try values(.sampleFormat, in: d, page: page) ?? [1]
    guard formats.allSatisfy({ $0 == 1 }) else {
      let f = formats.first { $0 != 1 }!
      throw unsupported("sample format \(f) (\(Self.sampleFormatName(f))); only 1 (unsigned integer) is supported")
    }
    guard d.entries[TIFFTag.tileWidth.rawValue] == nil, d.entries[TIFFTag.tileOffsets.rawValue] == nil else {
      throw unsupported("tiled layout; only strips are supported")
    }

    // An uncompressed page cannot hold more pixels than the file has bytes: checking this first
    // keeps a forged size from allocating gigabytes.
    let (count, overflow) = width.multipliedReportingOverflow(by: height)
    guard !overflow, count <= bytes.count else {
      throw DataError(path: path, "truncated: page \(page) is \(width)x\(height) pixels, "
        + "more than the file's \(bytes.count) bytes can hold")
    }
    let offsets = try values(.stripOffsets, in: d, page: page)
    guard let offsets else { throw DataError(path: path, "page \(page): missing StripOffsets (tag 273)") }
    let counts = try values(.stripByteCounts, in: d, page: page)
    if let counts, counts.count != offsets.count {
      throw DataError(path: path, "page \(page): \(counts.count) strip byte counts for \(offsets.count) strip offsets")
    }
    let rows = min(try scalar(.rowsPerStrip, in: d, page: page, default: height), height)
    guard rows > 0 else { throw DataError(path: path, "page \(page): RowsPerStrip is 0") }
    let strips = (height + rows - 1) / rows
    guard offsets.count >= strips else {
      throw DataError(path: path, "page \(page): \(offsets.count) strips for \(height) rows at \(rows) rows per strip, "
        + "expected \(strips)")
    }

    var pixels = [UInt8](repeating: 0, count: count)
    for s in 0..<strips {
      let need = min(rows, height - s * rows) * width, start = offsets[s]
      if let counts, counts[s] < need {
        throw DataError(path: path, "page \(page): strip \(s) holds \(counts[s]) bytes, expected \(need) "
          + "(\(need / width) rows of \(width) pixels)")
      }
      guard start + need <= bytes.count else {
        throw DataError(path: path, "truncated: page \(page): strip \(s) at offset \(start) needs \(need) bytes, "
          + "past the end of the file (\(bytes.count) bytes)")
      }
      pixels.withUnsafeMutableBytes { dst in
        bytes.withUnsafeBytes { src in
          UnsafeMutableRawBufferPointer(rebasing: dst[s * rows * width..<s * rows * width + need])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<start + need]))
        }
      }
    }
    if photometric == 0 {  // WhiteIsZero: store as 0 = black like every other page
      for i in pixels.indices { pixels[i] = 255 - pixels[i] }
    }
    return GrayImage(width: width, height: height, pixels: pixels)
  }

  // MARK: - Bytes

  func u16(_ offset: Int, _ what: @autoclosure () -> String) throws -> Int {
    try check(offset, 2, what())
    let a = Int(bytes[offset]), b = Int(bytes[offset + 1])
    return bigEndian ? a << 8 | b : b << 8 | a
  }

  func u32(_ offset: Int, _ what: @autoclosure () -> String) throws -> Int {
    try check(offset, 4, what())
    let b0 = Int(bytes[offset]), b1 = Int(bytes[offset + 1]), b2 = Int(bytes[offset + 2]), b3 = Int(bytes[offset + 3])
    return bigEndian ? b0 << 24 | b1 << 16 | b2 << 8 | b3 : b3 << 24 | b2 << 16 | b1 << 8 | b0
  }

  private func check(_ offset: Int, _ size: Int, _ what: String) throws {
    guard offset >= 0, offset + size <= bytes.count else {
      throw DataError(path: path, "truncated: \(what) at offset \(offset) lies past the end of the file (\(bytes.count) bytes)")
    }
  }
}

// MARK: - Tags and names

/// The baseline tags the reader looks at.
enum TIFFTag: Int, CustomStringConvertible {
  case newSubfileType = 254, imageWidth = 256, imageLength = 257, bitsPerSample = 258, compression = 259
  case photometric = 262, stripOffsets = 273, samplesPerPixel = 277, rowsPerStrip = 278
  case stripByteCounts = 279, tileWidth = 322, tileOffsets = 324, sampleFormat = 339

  var description: String {
    switch self {
    case .newSubfileType: "NewSubfileType"
    case .imageWidth: "ImageWidth"
    case .imageLength: "ImageLength"
    case .bitsPerSample: "BitsPerSample"
    case .compression: "Compression"
    case .photometric: "PhotometricInterpretation"
    case .stripOffsets: "StripOffsets"
    case .samplesPerPixel: "SamplesPerPixel"
    case .rowsPerStrip: "RowsPerStrip"
    case .stripByteCounts: "StripByteCounts"
    case .tileWidth: "TileWidth"
    case .tileOffsets: "TileOffsets"
    case .sampleFormat: "SampleFormat"
    }
  }
}

extension TIFFReader {
  static func compressionName(_ c: Int) -> String {
    [2: "CCITT RLE", 3: "CCITT Group 3", 4: "CCITT Group 4", 5: "LZW", 6: "old JPEG", 7: "JPEG",
     8: "Deflate", 32773: "PackBits", 32946: "Deflate", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP"][c]
      ?? "unknown"
  }

  static func photometricName(_ p: Int) -> String {
    [2: "RGB", 3: "palette", 4: "transparency mask", 5: "CMYK", 6: "YCbCr", 8: "CIE L*a*b*"][p] ?? "unknown"
  }

  static func sampleFormatName(_ f: Int) -> String {
    [2: "signed integer", 3: "floating point", 4: "undefined"][f] ?? "unknown"
  }
}

private func hex(_ b: UInt8) -> String {
  "0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
}

private extension String {
  func leftPadded(to n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
