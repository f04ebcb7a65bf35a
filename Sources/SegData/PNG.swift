import CPNG
import Foundation

// PNG files through libpng's simplified API (png_image), which reports errors in
// png_image.message rather than by longjmp, so no setjmp is needed from Swift.
//
// That API converts between sRGB (8-bit) and linear (16-bit) light when a file's gamma chunks ask
// for it. A segmentation tool wants the stored sample values, so the reader drops gAMA, sRGB,
// iCCP and cHRM before decoding: 8-bit files are then taken as sRGB and read as 8-bit sRGB,
// 16-bit files as linear and read as linear, both unchanged.

// MARK: - Reading and writing

/// Single-image PNG files: reads 1/2/4/8/16-bit grayscale, RGB and palette images, with or
/// without alpha (dropped); writes 8/16-bit grayscale and RGB. Malformed, truncated or
/// unsupported files throw a `DataError` naming the file with libpng's message.
public enum PNG {
  /// The image in the PNG file at `url`: palette images as RGB (grayscale when every colour is a
  /// gray), fewer than 8 bits scaled to 8 (1 -> 255), 16-bit files as 16-bit.
  public static func read(contentsOf url: URL) throws -> Image {
    try decode(FileBytes.read(url, expected: "a PNG file"), path: url.path, palette: .expand).image
  }

  /// As `read(contentsOf:)` for a file held in memory; `path` names it in errors.
  public static func decode(_ data: Data, path: String = "<memory>") throws -> Image {
    try decode([UInt8](data), path: path, palette: .expand).image
  }

  /// Writes `image` to `url` at its depth and channel count.
  public static func write(_ image: Image, to url: URL) throws {
    try FileBytes.write(encode(image, path: url.path), to: url)
  }

  /// The bytes of a PNG file holding `image`; `path` names it in errors.
  public static func encode(_ image: Image, path: String = "<memory>") throws -> Data {
    var format = image.channels == 3 ? PNG_FORMAT_FLAG_COLOR : 0
    if image.bitDepth == 16 { format |= PNG_FORMAT_FLAG_LINEAR }
    // 16-bit samples are written as stored (libpng's "linear" format is not converted on write).
    let eightBit = image.bitDepth == 8 ? image.samples.map { UInt8($0) } : []
    func write(_ memory: UnsafeMutableRawPointer?, _ size: inout Int) throws {
      var png = png_image()
      png.version = UInt32(PNG_IMAGE_VERSION)
      png.width = UInt32(image.width)
      png.height = UInt32(image.height)
      png.format = format
      defer { png_image_free(&png) }
      let ok = image.bitDepth == 8
        ? eightBit.withUnsafeBytes { png_image_write_to_memory(&png, memory, &size, 0, $0.baseAddress, 0, nil) }
        : image.samples.withUnsafeBytes { png_image_write_to_memory(&png, memory, &size, 0, $0.baseAddress, 0, nil) }
      guard ok != 0 else { throw DataError(path: path, "cannot write: libpng: \(message(png))") }
    }
    // The first pass only measures.
    var size = 0
    try write(nil, &size)
    var bytes = [UInt8](repeating: 0, count: size)
    try bytes.withUnsafeMutableBytes { try write($0.baseAddress, &size) }
    return Data(bytes.prefix(size))
  }
}

// MARK: - Decoding

extension PNG {
  /// The largest image the reader allocates, and how much a PNG file can expand: Deflate's
  /// 1032:1, times 32 for a 1-bit palette image read as RGBA.
  static let maxBytes = 1 << 30, maxExpansion = 1032 * 32

  package static func decode(_ bytes: [UInt8], path: String, palette mode: PaletteMode) throws -> DecodedImage {
    guard !bytes.isEmpty else { throw DataError(path: path, "empty file; expected a PNG file") }
    if let overrun = chunkOverrun(bytes) { throw DataError(path: path, overrun) }
    let stream = withoutColourChunks(bytes)
    return try stream.withUnsafeBytes { buffer in
      var png = png_image()
      png.version = UInt32(PNG_IMAGE_VERSION)
      defer { png_image_free(&png) }
      guard png_image_begin_read_from_memory(&png, buffer.baseAddress, buffer.count) != 0 else {
        throw DataError(path: path, "not a readable PNG file: libpng: \(message(png))")
      }
      let file = png.format
      let width = Int(png.width), height = Int(png.height)
      let colour = file & PNG_FORMAT_FLAG_COLOR != 0, alpha = file & PNG_FORMAT_FLAG_ALPHA != 0
      let linear = file & PNG_FORMAT_FLAG_LINEAR != 0, isPalette = file & PNG_FORMAT_FLAG_COLORMAP != 0
      let channels = (colour ? 3 : 1) + (alpha ? 1 : 0)
      let (size, overflow) = width.multipliedReportingOverflow(by: height * channels * (linear ? 2 : 1))
      guard !overflow, size <= min(maxBytes, maxExpansion * bytes.count) else {
        throw DataError(path: path, "a \(width)x\(height) image is more than its \(bytes.count)-byte file can hold")
      }
      func finish(_ out: UnsafeMutableRawPointer, colormap: UnsafeMutableRawPointer? = nil) throws {
        guard png_image_finish_read(&png, nil, out, 0, colormap) != 0 else {
          throw DataError(path: path, "cannot decode: libpng: \(message(png))")
        }
      }

      if isPalette && mode == .indices {
        // Colour-mapped output keeps the file's palette indices; RGBA entries need no background.
        png.format = PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA | PNG_FORMAT_FLAG_COLORMAP
        var indices = [UInt8](repeating: 0, count: width * height)
        var colormap = [UInt8](repeating: 0, count: 4 * 256)
        try indices.withUnsafeMutableBytes { i in
          try colormap.withUnsafeMutableBytes { try finish(i.baseAddress!, colormap: $0.baseAddress) }
        }
        return DecodedImage(image: Image(unchecked: width, height, 1, 8, indices.map(UInt16.init)), paletteIndices: true)
      }
      png.format = file & ~PNG_FORMAT_FLAG_COLORMAP
      var samples: [UInt16]
      if linear {
        samples = [UInt16](repeating: 0, count: width * height * channels)
        try samples.withUnsafeMutableBytes { try finish($0.baseAddress!) }
      } else {
        var bytes = [UInt8](repeating: 0, count: width * height * channels)
        try bytes.withUnsafeMutableBytes { try finish($0.baseAddress!) }
        samples = bytes.map(UInt16.init)
      }
      let image = Image(unchecked: width, height, colour ? 3 : 1, linear ? 16 : 8,
                        alpha ? dropAlpha(samples, channels: channels, premultiplied: linear) : samples)
      // A palette of grays is a grayscale image.
      if isPalette, colour, image.samples.indices.lazy.filter({ $0 % 3 == 0 }).allSatisfy({
        image.samples[$0] == image.samples[$0 + 1] && image.samples[$0] == image.samples[$0 + 2]
      }) {
        return DecodedImage(image: image.converted(channels: 1))
      }
      return DecodedImage(image: image)
    }
  }

  /// The colour samples of each pixel without its last (alpha) sample. 16-bit output of the
  /// simplified API is premultiplied by alpha: it is divided back out, exact for opaque pixels,
  /// to within rounding for translucent ones; fully transparent pixels read 0.
  static func dropAlpha(_ samples: [UInt16], channels: Int, premultiplied: Bool) -> [UInt16] {
    let colours = channels - 1
    var out = [UInt16](repeating: 0, count: samples.count / channels * colours)
    for p in 0..<samples.count / channels {
      let a = UInt32(samples[p * channels + colours])
      for c in 0..<colours {
        let v = UInt32(samples[p * channels + c])
        out[p * colours + c] = !premultiplied || a == 65535 ? UInt16(v)
          : a == 0 ? 0 : UInt16(min(65535, (v * 65535 + a / 2) / a))
      }
    }
    return out
  }

  /// `bytes` without the chunks that would make libpng convert sample values (gAMA, sRGB, iCCP,
  /// cHRM); unchanged when it is not a well-formed chunk sequence, which libpng then reports.
  static func withoutColourChunks(_ bytes: [UInt8]) -> [UInt8] {
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    guard bytes.count > 8, Array(bytes[0..<8]) == signature else { return bytes }
    let dropped: Set<String> = ["gAMA", "sRGB", "iCCP", "cHRM"]
    var out = Array(bytes[0..<8]), at = 8
    while at + 12 <= bytes.count {
      let length = bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
      let type = String(decoding: bytes[at + 4..<at + 8], as: UTF8.self)
      let end = at + 12 + length
      guard end <= bytes.count else { break }
      if !dropped.contains(type) { out += bytes[at..<end] }
      at = end
      if type == "IDAT" { break }  // colour chunks must precede the image data
    }
    return out + bytes[at...]
  }
}

// MARK: - Chunk lengths

extension PNG {
  /// Why `bytes` cannot be read, when a chunk before the image data claims more bytes than the
  /// file has left; nil otherwise. libpng reads each such chunk whole, into a buffer of the
  /// claimed size (zeroed first), before it finds the data missing: a damaged length field would
  /// make a 100-byte file cost 2 GB and seconds. Such a file fails in libpng anyway, so refusing
  /// it here changes nothing but the message and the cost. Chunks from the first IDAT on are
  /// libpng's to check: it reads image data piecemeal and never reads past it.
  static func chunkOverrun(_ bytes: [UInt8]) -> String? {
    let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    guard bytes.count > 8, Array(bytes[0..<8]) == signature else { return nil }
    var at = 8
    while at + 8 <= bytes.count {
      let type = bytes[at + 4..<at + 8]
      if Array(type) == Array("IDAT".utf8) { return nil }
      let length = bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
      let left = bytes.count - at - 8  // after the chunk's length and type: its data, then a 4-byte CRC
      if length + 4 > left {
        let name = type.allSatisfy { (65...90).contains($0) || (97...122).contains($0) }
          ? "\"\(String(decoding: type, as: UTF8.self))\"" : "of type 0x" + type.map { String(format: "%02X", $0) }.joined()
        return "damaged or truncated PNG file: chunk \(name) at byte \(at) claims \(length) bytes of data and a "
          + "4-byte CRC, but only \(left) bytes follow its header"
      }
      at += 12 + length
    }
    return nil
  }
}

/// libpng's message in a png_image.
private func message(_ png: png_image) -> String {
  withUnsafeBytes(of: png.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}
