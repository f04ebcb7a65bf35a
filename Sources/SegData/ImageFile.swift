import Foundation

// MARK: - Formats

/// The image file formats the data sets read and write.
public enum ImageFormat: String, Sendable, CaseIterable {
  case png, tiff

  /// File name extensions (lower case) and their formats.
  public static let extensions: [String: ImageFormat] = ["png": .png, "tif": .tiff, "tiff": .tiff]

  /// The format a file name's extension names (any case), nil for other extensions.
  public init?(url: URL) {
    guard let format = Self.extensions[url.pathExtension.lowercased()] else { return nil }
    self = format
  }

  /// The format of a file from its first bytes (PNG signature, TIFF or BigTIFF header), nil for others.
  static func sniff(_ bytes: [UInt8]) -> ImageFormat? {
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
    let tiffHeaders: [[UInt8]] = [[0x49, 0x49, 42, 0], [0x49, 0x49, 43, 0], [0x4D, 0x4D, 0, 42], [0x4D, 0x4D, 0, 43]]
    if tiffHeaders.contains(where: { bytes.starts(with: $0) }) { return .tiff }
    return nil
  }
}

// MARK: - One image per file

/// Single images in PNG or TIFF files, whatever the extension says: the format is told by the
/// file's first bytes when reading and by its extension when writing.
public enum ImageFile {
  /// The image in the file at `url` (a TIFF must have one full-resolution page).
  public static func read(contentsOf url: URL) throws -> Image {
    try read(url, palette: .expand).image
  }

  /// Writes `image` to `url` as PNG (.png) or TIFF (.tif, .tiff; `compression` applies).
  public static func write(_ image: Image, to url: URL, compression: TIFFCompression = .deflate) throws {
    switch ImageFormat(url: url) {
    case .png: try PNG.write(image, to: url)
    case .tiff: try TIFF.write([image], to: url, compression: compression)
    case nil:
      throw DataError(path: url.path, "cannot write: unknown extension \".\(url.pathExtension)\"; use .png, .tif or .tiff")
    }
  }

  /// The image in the file at `url`, palette images as colours or as indices.
  static func read(_ url: URL, palette: PaletteMode) throws -> DecodedImage {
    let bytes = try FileBytes.read(url, expected: "a PNG or TIFF image")
    guard !bytes.isEmpty else { throw DataError(path: url.path, "empty file; expected a PNG or TIFF image") }
    switch ImageFormat.sniff(bytes) {
    case .png:
      return try PNG.decode(bytes, path: url.path, palette: palette)
    case .tiff:
      let pages = try TIFF.decodePages(bytes, path: url.path, palette: palette)
      guard pages.count == 1 else {
        throw DataError(path: url.path, "\(pages.count) pages; expected a single image per file")
      }
      return pages[0]
    case nil:
      let start = bytes.prefix(4).map { "0x" + String($0, radix: 16, uppercase: true) }.joined(separator: " ")
      throw DataError(path: url.path, "not a PNG or TIFF file: it starts with bytes \(start)")
    }
  }
}
