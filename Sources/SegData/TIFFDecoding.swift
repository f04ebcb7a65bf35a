import CTIFF
import Foundation

// MARK: - Decoded pages

/// How colour-mapped (palette) pages are read: as the colours (images) or as the palette
/// indices (masks, whose indices are class numbers).
package enum PaletteMode {
  case expand, indices
}

/// An image read from a file; `paletteIndices` when its samples are palette indices, not colours.
package struct DecodedImage {
  var image: Image
  var paletteIndices = false
}

// MARK: - Reading a file

extension TIFF {
  /// The full-resolution pages of a TIFF file in memory, through libtiff; `path` names it in errors.
  package static func decodePages(_ bytes: [UInt8], path: String, palette: PaletteMode) throws -> [DecodedImage] {
    guard !bytes.isEmpty else { throw DataError(path: path, "empty file; expected a TIFF file") }
    let file = TIFFMemoryFile(bytes: bytes, name: URL(fileURLWithPath: path).lastPathComponent)
    guard let tif = LibTIFF.open(file, mode: "r") else {
      throw DataError(path: path, "not a readable TIFF file: " + file.reason(since: 0, "libtiff could not open it"))
    }
    return try withExtendedLifetime(file) {
      defer { TIFFClose(tif) }
      var pages: [DecodedImage] = []
      var index = 0
      while true {
        let kind = LibTIFF.field(tif, TIFFTAG_SUBFILETYPE, UInt32(0)) ?? 0
        // Reduced-resolution pages (thumbnails, pyramid levels) are not images of their own.
        if kind & UInt32(FILETYPE_REDUCEDIMAGE) == 0 {
          pages.append(try TIFFPageReader(tif: tif, file: file, path: path, page: index).read(palette: palette))
        }
        // libtiff takes an IFD whose link to the next one is cut off as the last, and stops
        // quietly at a loop: both are checked here, so a damaged file does not lose pages unnoticed.
        let here = Int(TIFFCurrentDirOffset(tif))
        guard let next = nextIFD(bytes, after: here) else {
          throw DataError(path: path, "page \(index): truncated: its IFD at offset \(here) runs past the end of the file "
            + "(\(bytes.count) bytes)")
        }
        let before = file.errors.count
        guard TIFFReadDirectory(tif) == 1 else {
          if file.errors.count > before {
            throw DataError(path: path, "page \(index + 1): " + file.reason(since: before, ""))
          }
          guard next == 0 else {
            throw DataError(path: path, "page \(index + 1): libtiff did not read the IFD at offset \(next) that page "
              + "\(index) links to (a loop back to an earlier page?)")
          }
          break
        }
        index += 1
      }
      guard !pages.isEmpty else { throw DataError(path: path, "no full-resolution pages") }
      return pages
    }
  }
}

/// The offset of the IFD after the one at `offset` (0 for the last), read from the file itself;
/// nil when the IFD runs past the end of the file.
func nextIFD(_ bytes: [UInt8], after offset: Int) -> Int? {
  let little = bytes.first == 0x49, big = bytes.count > 3 && bytes[2 + (little ? 0 : 1)] == 43
  func read(_ at: Int, _ size: Int) -> Int? {
    guard at >= 0, size <= 8, at <= bytes.count - size else { return nil }
    let b = bytes[at..<at + size]
    let value = (little ? b.reversed() : Array(b)).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    return value > UInt64(Int.max) ? Int.max : Int(value)
  }
  let (countSize, entrySize, linkSize) = big ? (8, 20, 8) : (2, 12, 4)
  guard let count = read(offset, countSize), count <= (bytes.count - offset) / entrySize else { return nil }
  return read(offset + countSize + count * entrySize, linkSize)
}

// MARK: - One page

/// Reads the current directory of an open TIFF: its strips or tiles, decoded by libtiff, into an
/// `Image`. Supports 1-bit (as 0/255), 8- and 16-bit unsigned samples, grayscale (either
/// polarity), RGB and 8-bit palette, chunky or planar, with extra samples (alpha) dropped.
struct TIFFPageReader {
  let tif: OpaquePointer
  let file: TIFFMemoryFile
  let path: String
  let page: Int

  func fail(_ what: String) -> DataError { DataError(path: path, "page \(page): \(what)") }

  func read(palette: PaletteMode) throws -> DecodedImage {
    let width = Int(LibTIFF.field(tif, TIFFTAG_IMAGEWIDTH, UInt32(0)) ?? 0)
    let height = Int(LibTIFF.field(tif, TIFFTAG_IMAGELENGTH, UInt32(0)) ?? 0)
    guard width > 0, height > 0 else {
      throw fail("image size \(width)x\(height); width and height must be positive")
    }
    let bits = Int(LibTIFF.field(tif, TIFFTAG_BITSPERSAMPLE, UInt16(0)) ?? 1)
    let spp = Int(LibTIFF.field(tif, TIFFTAG_SAMPLESPERPIXEL, UInt16(0)) ?? 1)
    let format = Int(LibTIFF.field(tif, TIFFTAG_SAMPLEFORMAT, UInt16(0)) ?? 1)
    let planar = Int(LibTIFF.field(tif, TIFFTAG_PLANARCONFIG, UInt16(0)) ?? 1) == PLANARCONFIG_SEPARATE
    let compression = Int(LibTIFF.field(tif, TIFFTAG_COMPRESSION, UInt16(0)) ?? 1)
    guard let photometric = LibTIFF.field(tif, TIFFTAG_PHOTOMETRIC, UInt16(0)).map(Int.init) else {
      throw fail("missing PhotometricInterpretation (tag 262)")
    }

    guard format == 1 else {
      let name = [2: "signed integer", 3: "floating point", 4: "undefined"][format] ?? "unknown"
      throw fail("unsupported sample format \(format) (\(name)); only 1 (unsigned integer) is supported")
    }
    let colors: Int
    switch photometric {
    case 0, 1, 3: colors = 1
    case 2: colors = 3
    default:
      let names = [4: "transparency mask", 5: "CMYK", 6: "YCbCr", 8: "CIE L*a*b*", 32844: "LogL", 32845: "LogLuv"]
      let name = names[photometric] ?? "unknown"
      throw fail("unsupported photometric interpretation \(photometric) (\(name)); only grayscale "
        + "(0 WhiteIsZero, 1 BlackIsZero), 2 (RGB) and 3 (palette) are supported")
    }
    guard spp >= colors, spp <= 16 else {
      throw fail("\(spp) samples per pixel; photometric interpretation \(photometric) needs \(colors) or more")
    }
    switch bits {
    case 8, 16: break
    case 1 where (photometric == 0 || photometric == 1) && spp == 1: break
    default:
      throw fail("unsupported bit depth \(bits); only 8 and 16 bits per sample (and 1-bit grayscale) are supported")
    }
    if photometric == 3 && (bits != 8 || spp != 1) {
      throw fail("unsupported palette page of \(spp) sample(s) of \(bits) bits; only 8-bit palette indices are supported")
    }

    // libtiff opens a page whose codec it lacks and fails only at its first strip, after the
    // whole page is allocated: a few bytes claiming a huge page would cost that much for nothing.
    guard (0...Int(UInt16.max)).contains(compression), TIFFIsCODECConfigured(UInt16(compression)) == 1 else {
      throw fail("compression \(compression) (\(LibTIFF.compressionName(compression))) is not one this build of libtiff can "
        + "decode; save the file uncompressed or with LZW, Deflate or PackBits (or as PNG)")
    }
    let layout = Layout(width: width, height: height, bits: bits, spp: spp, planar: planar)
    guard let total = layout.totalBytes, total <= decodedLimit(compression: compression) else {
      throw fail("\(width)x\(height) pixels of \(spp) sample(s) of \(bits) bits are more than its "
        + "\(file.bytes.count)-byte file can hold with compression \(compression) (\(LibTIFF.compressionName(compression)))")
    }
    var raw = [UInt8](repeating: 0, count: total)
    if TIFFIsTiled(tif) != 0 {
      try readTiles(layout, into: &raw, limit: decodedLimit(compression: compression))
    } else {
      try readStrips(layout, into: &raw)
    }

    var samples = layout.samples(raw, colors: colors)
    let maxValue: UInt16 = bits == 16 ? 65535 : 255
    if photometric == 0 {  // WhiteIsZero: store as 0 = black like every other page
      for i in samples.indices { samples[i] = maxValue - samples[i] }
    }
    let depth = bits == 16 ? 16 : 8
    if photometric == 3 {
      if palette == .indices {
        return DecodedImage(image: Image(unchecked: width, height, 1, 8, samples), paletteIndices: true)
      }
      return DecodedImage(image: try expandPalette(samples, width: width, height: height))
    }
    return DecodedImage(image: Image(unchecked: width, height, colors, depth, samples))
  }

  /// The most bytes a page may decode to: what a file of this size can hold under the page's
  /// compression (uncompressed 1:1, PackBits 64:1, Deflate 1032:1, LZW under 4096:1), and for
  /// other codecs libtiff's allocation limit. A forged size is refused before anything is allocated.
  func decodedLimit(compression: Int) -> Int {
    let ratio = [1: 1, 32773: 64, 8: 1032, 32946: 1032, 5: 4096][compression]
    return min(ratio.map { $0 * file.bytes.count } ?? LibTIFF.maxAllocation, LibTIFF.maxAllocation)
  }

  // MARK: - Strips and tiles

  private func readStrips(_ l: Layout, into raw: inout [UInt8]) throws {
    let rows = Int(min(LibTIFF.field(tif, TIFFTAG_ROWSPERSTRIP, UInt32(0)) ?? UInt32.max, UInt32(l.height)))
    guard rows > 0 else { throw fail("RowsPerStrip is 0") }
    let perPlane = (l.height + rows - 1) / rows
    let strips = Int(TIFFNumberOfStrips(tif))
    guard strips >= perPlane * l.planes else {
      throw fail("\(strips) strips for \(l.height) rows at \(rows) rows per strip, expected \(perPlane * l.planes)")
    }
    for plane in 0..<l.planes {
      for s in 0..<perPlane {
        let strip = plane * perPlane + s
        let size = min(rows, l.height - s * rows) * l.rowBytes
        let offset = plane * l.planeBytes + s * rows * l.rowBytes
        let before = file.errors.count
        let n = raw.withUnsafeMutableBytes {
          Int(TIFFReadEncodedStrip(tif, UInt32(strip), $0.baseAddress! + offset, tmsize_t(size)))
        }
        guard n == size, file.errors.count == before else {
          throw fail("strip \(strip): " + file.reason(since: before, "libtiff decoded \(max(n, 0)) of its \(size) bytes"))
        }
      }
    }
  }

  private func readTiles(_ l: Layout, into raw: inout [UInt8], limit: Int) throws {
    let tw = Int(LibTIFF.field(tif, TIFFTAG_TILEWIDTH, UInt32(0)) ?? 0)
    let th = Int(LibTIFF.field(tif, TIFFTAG_TILELENGTH, UInt32(0)) ?? 0)
    guard tw > 0, th > 0 else { throw fail("tile size \(tw)x\(th); tiles must be at least 1x1") }
    guard l.bits != 1 || tw % 8 == 0 else { throw fail("1-bit tiles \(tw) pixels wide; the width must be a multiple of 8") }
    let tileBytes = Int(TIFFTileSize(tif)), tileRowBytes = Int(TIFFTileRowSize(tif))
    guard tileBytes > 0, tileBytes <= limit, tileRowBytes * th == tileBytes else {
      throw fail("\(tw)x\(th) tiles of \(tileBytes) bytes do not fit its \(file.bytes.count)-byte file")
    }
    let across = (l.width + tw - 1) / tw, down = (l.height + th - 1) / th
    guard Int(TIFFNumberOfTiles(tif)) >= across * down * l.planes else {
      throw fail("\(TIFFNumberOfTiles(tif)) tiles, expected \(across * down * l.planes) of \(tw)x\(th)")
    }
    var buffer = [UInt8](repeating: 0, count: tileBytes)
    for plane in 0..<l.planes {
      for ty in 0..<down {
        for tx in 0..<across {
          let tile = (plane * down + ty) * across + tx
          let before = file.errors.count
          let n = buffer.withUnsafeMutableBytes {
            Int(TIFFReadEncodedTile(tif, UInt32(tile), $0.baseAddress!, tmsize_t(tileBytes)))
          }
          guard n == tileBytes, file.errors.count == before else {
            throw fail("tile \(tile): " + file.reason(since: before, "libtiff decoded \(max(n, 0)) of its \(tileBytes) bytes"))
          }
          // The part of the tile inside the image: whole bytes, as x0 is a multiple of 8 pixels for 1 bit.
          let x0 = l.rowBytes(pixels: tx * tw), x1 = l.rowBytes(pixels: min((tx + 1) * tw, l.width))
          let count = x1 - x0
          for r in 0..<min(th, l.height - ty * th) {
            let dst: Int = plane * l.planeBytes + (ty * th + r) * l.rowBytes + x0
            let src: Int = r * tileRowBytes
            raw.replaceSubrange(dst..<dst + count, with: buffer[src..<src + count])
          }
        }
      }
    }
  }

  // MARK: - Palette

  /// Looks the indices up in the page's colour map: 8-bit RGB, or grayscale when every colour
  /// used is a gray.
  private func expandPalette(_ indices: [UInt16], width: Int, height: Int) throws -> Image {
    var r: UnsafeMutablePointer<UInt16>?, g: UnsafeMutablePointer<UInt16>?, b: UnsafeMutablePointer<UInt16>?
    let found = withUnsafeMutablePointer(to: &r) { pr in
      withUnsafeMutablePointer(to: &g) { pg in
        withUnsafeMutablePointer(to: &b) { pb in
          withVaList([pr, pg, pb]) { TIFFVGetField(tif, UInt32(TIFFTAG_COLORMAP), $0) }
        }
      }
    }
    guard found == 1, let r, let g, let b else { throw fail("palette page without a ColorMap (tag 320)") }
    let map = (0..<256).map { [r[$0], g[$0], b[$0]] }
    // Writers that put 8-bit values in the 16-bit map are common; libtiff's own RGBA reader
    // makes the same guess.
    let eightBit = map.allSatisfy { $0.allSatisfy { $0 < 256 } }
    let colours = map.map { $0.map { eightBit ? $0 : UInt16((UInt32($0) + 128) / 257) } }
    if indices.allSatisfy({ let c = colours[Int($0)]; return c[0] == c[1] && c[1] == c[2] }) {
      return Image(unchecked: width, height, 1, 8, indices.map { colours[Int($0)][0] })
    }
    return Image(unchecked: width, height, 3, 8, indices.flatMap { colours[Int($0)] })
  }
}

// MARK: - Byte layout

/// Where the samples of a page lie in the decoded bytes: one plane (chunky) or one per sample
/// (planar), each `height` rows of `rowBytes`.
struct Layout {
  let width, height, bits, spp: Int
  let planar: Bool

  var planes: Int { planar ? spp : 1 }
  var samplesPerRowPixel: Int { planar ? 1 : spp }

  /// Bytes of `pixels` pixels of one row of a plane.
  func rowBytes(pixels: Int) -> Int { (pixels * samplesPerRowPixel * bits + 7) / 8 }
  var rowBytes: Int { rowBytes(pixels: width) }
  var planeBytes: Int { rowBytes * height }

  /// All planes' bytes, nil on overflow.
  var totalBytes: Int? {
    let (row, o1) = width.multipliedReportingOverflow(by: samplesPerRowPixel * bits)
    let (plane, o2) = ((row + 7) / 8).multipliedReportingOverflow(by: height)
    let (total, o3) = plane.multipliedReportingOverflow(by: planes)
    return o1 || o2 || o3 ? nil : total
  }

  /// The first `colors` samples of each pixel as [H,W,colors], extra samples dropped; 1-bit
  /// samples become 0 or 255.
  func samples(_ raw: [UInt8], colors: Int) -> [UInt16] {
    var out = [UInt16](repeating: 0, count: width * height * colors)
    if colors == spp && bits >= 8 && (!planar || spp == 1) {  // every sample kept, in order: a plain copy
      raw.withUnsafeBytes { r in
        out.withUnsafeMutableBufferPointer { o in
          if bits == 16 {
            UnsafeMutableRawBufferPointer(o).copyMemory(from: r)
          } else {
            for i in 0..<o.count { o[i] = UInt16(r[i]) }
          }
        }
      }
      return out
    }
    raw.withUnsafeBytes { r in
      out.withUnsafeMutableBufferPointer { o in
        for c in 0..<colors {
          let plane = planar ? c * planeBytes : 0
          for y in 0..<height {
            let row = plane + y * rowBytes
            for x in 0..<width {
              let k = planar ? x : x * spp + c
              let v: UInt16 = switch bits {
              case 8: UInt16(r[row + k])
              case 16: r.loadUnaligned(fromByteOffset: row + 2 * k, as: UInt16.self)
              default: (r[row + k / 8] >> (7 - k % 8)) & 1 == 1 ? 255 : 0
              }
              o[(y * width + x) * colors + c] = v
            }
          }
        }
      }
    }
    return out
  }
}
