import CTIFF
import Foundation

// TIFF files through libtiff (Debian's libtiff-dev): any number of pages, 8/16-bit grayscale or
// RGB (1-bit grayscale and 8-bit palette pages are read too), strips or tiles, uncompressed or
// compressed with any codec the library has (LZW, Deflate, PackBits, ...).

// MARK: - Compression

/// The lossless compression schemes the writer offers.
public enum TIFFCompression: String, Sendable, CaseIterable {
  case none, lzw, deflate, packBits

  /// libtiff's code for the scheme.
  var code: Int32 {
    switch self {
    case .none: COMPRESSION_NONE
    case .lzw: COMPRESSION_LZW
    case .deflate: COMPRESSION_ADOBE_DEFLATE
    case .packBits: COMPRESSION_PACKBITS
    }
  }
}

// MARK: - Reading and writing

/// Multi-page TIFF files. Malformed, truncated or unsupported files throw a `DataError` naming the
/// file (and page) with libtiff's own message where it has one.
public enum TIFF {
  /// The pages of the 8-bit grayscale TIFF file at `url` (the ISBI 2012 volumes), in file order;
  /// reduced-resolution pages are skipped, any other kind of page throws (see `readImages`).
  public static func read(contentsOf url: URL) throws -> [GrayImage] {
    try grayPages(decodePages(FileBytes.read(url, expected: "a TIFF file"), path: url.path, palette: .expand), path: url.path)
  }

  /// The pages of the TIFF file at `url`, of any supported kind, in file order.
  public static func readImages(contentsOf url: URL) throws -> [Image] {
    try decodePages(FileBytes.read(url, expected: "a TIFF file"), path: url.path, palette: .expand).map(\.image)
  }

  /// As `read(contentsOf:)` for a file held in memory; `path` names it in errors.
  public static func decode(_ data: Data, path: String = "<memory>") throws -> [GrayImage] {
    try grayPages(decodePages([UInt8](data), path: path, palette: .expand), path: path)
  }

  /// As `readImages(contentsOf:)` for a file held in memory; `path` names it in errors.
  public static func decodeImages(_ data: Data, path: String = "<memory>") throws -> [Image] {
    try decodePages([UInt8](data), path: path, palette: .expand).map(\.image)
  }

  /// Writes 8-bit grayscale `pages` (at least one, any sizes) to `url` as a little-endian TIFF.
  public static func write(_ pages: [GrayImage], to url: URL, compression: TIFFCompression = .none) throws {
    try FileBytes.write(encode(pages, path: url.path, compression: compression), to: url)
  }

  /// Writes `pages` (at least one, any sizes, depths and channel counts) to `url` as a
  /// little-endian TIFF, in strips or in `tileSize` x `tileSize` tiles (a multiple of 16).
  public static func write(_ pages: [Image], to url: URL, compression: TIFFCompression = .none, tileSize: Int? = nil) throws {
    try FileBytes.write(encode(pages, path: url.path, compression: compression, tileSize: tileSize), to: url)
  }

  /// The bytes of a little-endian TIFF holding 8-bit grayscale `pages`; `path` names it in errors.
  public static func encode(
    _ pages: [GrayImage], path: String = "<memory>", compression: TIFFCompression = .none
  ) throws -> Data {
    try encode(pages, path: path, compression: compression, bigEndian: false)
  }

  /// The bytes of a little-endian TIFF holding `pages`; `path` names it in errors.
  public static func encode(
    _ pages: [Image], path: String = "<memory>", compression: TIFFCompression = .none, tileSize: Int? = nil
  ) throws -> Data {
    try encode(pages, path: path, compression: compression, tileSize: tileSize, bigEndian: false)
  }

  /// As `encode(_:path:compression:)`, in either byte order (big-endian output exists to test the reader).
  static func encode(_ pages: [GrayImage], path: String, compression: TIFFCompression = .none, bigEndian: Bool) throws -> Data {
    let raw = try pages.enumerated().map { i, page in
      let (n, overflow) = page.width.multipliedReportingOverflow(by: page.height)
      guard page.width > 0, page.height > 0, !overflow, page.pixels.count == n else {
        throw DataError(path: path, "page \(i): \(page.pixels.count) pixels for a \(page.width)x\(page.height) image; "
          + "sizes must be positive")
      }
      return RawPage(width: page.width, height: page.height, channels: 1, bitDepth: 8, bytes: page.pixels)
    }
    return try encode(raw, path: path, compression: compression, tileSize: nil, bigEndian: bigEndian)
  }

  /// Checks that every page is 8-bit grayscale.
  private static func grayPages(_ pages: [DecodedImage], path: String) throws -> [GrayImage] {
    try pages.enumerated().map { i, page in
      let image = page.image
      guard image.channels == 1, image.bitDepth == 8 else {
        throw DataError(path: path, "page \(i) is \(image.bitDepth)-bit \(image.channels == 1 ? "grayscale" : "RGB"); "
          + "expected 8-bit grayscale pages here")
      }
      return GrayImage(width: image.width, height: image.height, pixels: image.samples.map { UInt8($0) })
    }
  }
}

// MARK: - Writer

extension TIFF {
  /// Pages need no checks: `Image`'s initializer has made sure each is consistent.
  static func encode(
    _ pages: [Image], path: String, compression: TIFFCompression, tileSize: Int?, bigEndian: Bool
  ) throws -> Data {
    try encode(pages.map(RawPage.init), path: path, compression: compression, tileSize: tileSize, bigEndian: bigEndian)
  }

  static func encode(
    _ pages: [RawPage], path: String, compression: TIFFCompression, tileSize: Int?, bigEndian: Bool
  ) throws -> Data {
    guard !pages.isEmpty else { throw DataError(path: path, "no pages to write; a TIFF file needs at least one") }
    if let t = tileSize, t <= 0 || t % 16 != 0 {
      throw DataError(path: path, "tile size \(t); TIFF tiles are a positive multiple of 16 pixels")
    }
    let file = TIFFMemoryFile(name: URL(fileURLWithPath: path).lastPathComponent)
    guard let tif = LibTIFF.open(file, mode: bigEndian ? "wb" : "wl") else {
      throw DataError(path: path, "cannot write: " + file.reason(since: 0, "libtiff could not create the file"))
    }
    try withExtendedLifetime(file) {
      do {
        for (i, page) in pages.enumerated() {
          try TIFFPageWriter(tif: tif, file: file, path: path, page: i)
            .write(page, compression: compression, tileSize: tileSize, pages: pages.count)
        }
      } catch {
        TIFFClose(tif)
        throw error
      }
      let before = file.errors.count
      TIFFClose(tif)
      guard file.errors.count == before else {
        throw DataError(path: path, "cannot write: " + file.reason(since: before, ""))
      }
    }
    return Data(file.bytes)
  }
}

/// A page to write: its description and its samples as libtiff takes them, [H,W,C] row-major
/// bytes, 16-bit samples in native byte order.
struct RawPage {
  let width, height, channels, bitDepth: Int
  let bytes: [UInt8]
}

extension RawPage {
  init(_ image: Image) {
    self.init(width: image.width, height: image.height, channels: image.channels, bitDepth: image.bitDepth,
              bytes: image.bitDepth == 8 ? image.samples.map { UInt8($0) } : image.samples.withUnsafeBytes { Array($0) })
  }
}

/// Writes one page as the current directory of a TIFF open for writing.
struct TIFFPageWriter {
  let tif: OpaquePointer
  let file: TIFFMemoryFile
  let path: String
  let page: Int

  func write(_ image: RawPage, compression: TIFFCompression, tileSize: Int?, pages: Int) throws {
    let before = file.errors.count
    func check(_ ok: Bool, _ what: String) throws {
      guard ok, file.errors.count == before else {
        throw DataError(path: path, "cannot write page \(page): \(what): " + file.reason(since: before, "libtiff refused"))
      }
    }
    let c = image.channels, w = image.width, h = image.height
    var ok = LibTIFF.set(tif, TIFFTAG_IMAGEWIDTH, UInt32(w))
      && LibTIFF.set(tif, TIFFTAG_IMAGELENGTH, UInt32(h))
      && LibTIFF.set(tif, TIFFTAG_BITSPERSAMPLE, Int32(image.bitDepth))
      && LibTIFF.set(tif, TIFFTAG_SAMPLESPERPIXEL, Int32(c))
      && LibTIFF.set(tif, TIFFTAG_PHOTOMETRIC, c == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK)
      && LibTIFF.set(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG)
      && LibTIFF.set(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT)
      && LibTIFF.set(tif, TIFFTAG_COMPRESSION, compression.code)
    if pages > 1 { ok = ok && LibTIFF.set(tif, TIFFTAG_SUBFILETYPE, UInt32(FILETYPE_PAGE)) }
    if compression == .lzw || compression == .deflate {
      // Horizontal differencing first: neighbouring pixels are alike, their differences compress better.
      ok = ok && LibTIFF.set(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL)
    }
    let rowBytes = w * c * image.bitDepth / 8
    if let t = tileSize {
      ok = ok && LibTIFF.set(tif, TIFFTAG_TILEWIDTH, UInt32(t)) && LibTIFF.set(tif, TIFFTAG_TILELENGTH, UInt32(t))
    } else {
      // Strips of about 64 KiB: small enough to read a few rows at a time, large enough to compress well.
      ok = ok && LibTIFF.set(tif, TIFFTAG_ROWSPERSTRIP, UInt32(max(1, min(h, 65536 / rowBytes))))
    }
    try check(ok, "setting its tags")

    let bytes = image.bytes
    // libtiff may change the buffer it is given (byte swapping, predictor): each call gets a copy.
    if let t = tileSize {
      let tileRow = t * c * image.bitDepth / 8
      var tile = [UInt8](repeating: 0, count: tileRow * t)
      for ty in 0..<(h + t - 1) / t {
        for tx in 0..<(w + t - 1) / t {
          for i in tile.indices { tile[i] = 0 }
          let x0 = tx * tileRow, x1 = min(x0 + tileRow, rowBytes)
          for r in 0..<min(t, h - ty * t) {
            let src = (ty * t + r) * rowBytes
            tile.replaceSubrange(r * tileRow..<r * tileRow + x1 - x0, with: bytes[src + x0..<src + x1])
          }
          let index = TIFFComputeTile(tif, UInt32(tx * t), UInt32(ty * t), 0, 0)
          let n = tile.withUnsafeMutableBytes { Int(TIFFWriteEncodedTile(tif, index, $0.baseAddress!, tmsize_t($0.count))) }
          try check(n == tile.count, "tile \(index)")
        }
      }
    } else {
      let rows = Int(LibTIFF.field(tif, TIFFTAG_ROWSPERSTRIP, UInt32(0)) ?? UInt32(h))
      for s in 0..<(h + rows - 1) / rows {
        var strip = Array(bytes[s * rows * rowBytes..<min(h, (s + 1) * rows) * rowBytes])
        let n = strip.withUnsafeMutableBytes { Int(TIFFWriteEncodedStrip(tif, UInt32(s), $0.baseAddress!, tmsize_t($0.count))) }
        try check(n == strip.count, "strip \(s)")
      }
    }
    try check(TIFFWriteDirectory(tif) == 1, "its directory")
  }
}

// MARK: - Files

/// Reading and writing whole files, with errors that say what went wrong.
enum FileBytes {
  /// The bytes of the file at `url`; `expected` says what it should be ("a TIFF file").
  static func read(_ url: URL, expected: String) throws -> [UInt8] {
    do {
      return [UInt8](try Data(contentsOf: url))
    } catch {
      var isDirectory: ObjCBool = false
      if !FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
        throw DataError(path: url.path, "no such file; expected \(expected)")
      }
      if isDirectory.boolValue { throw DataError(path: url.path, "is a directory; expected \(expected)") }
      throw DataError(path: url.path, "cannot read: \(error.localizedDescription)")
    }
  }

  /// Writes `data` to `url` atomically.
  static func write(_ data: Data, to url: URL) throws {
    do {
      try data.write(to: url, options: .atomic)
    } catch {
      throw DataError(path: url.path, "cannot write: \(error.localizedDescription)")
    }
  }
}
