import Foundation
import Testing

@testable import SegData

// MARK: - Interoperability with Pillow

/// A minimal PNG writer for what Pillow cannot write (16-bit RGB, chosen chunks).
private let pythonPNGWriter = """
  import struct, zlib
  def chunk(t, d):
      return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
  def png(path, a, color_type, extra=b''):
      h, w = a.shape[:2]
      bits = 16 if a.dtype == np.uint16 else 8
      rows = a.astype('>u2') if bits == 16 else a
      raw = b''.join(b'\\x00' + rows[y].tobytes() for y in range(h))
      head = chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, bits, color_type, 0, 0, 0))
      open(path, 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + head + extra + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))

  """

@Suite(.enabled(if: DataFixture.hasPillow, "needs Python with numpy and Pillow: run `bash scripts/setup.sh --tests`"))
struct PNGInteropTests {
  @Test func filesWrittenByPillowReadBackIdentically() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try DataFixture.runPython(pythonRamps + pythonPNGWriter + """
      from PIL import Image
      g8, g16, rgb = ramp((21, 37), 7), ramp((21, 37), 4099, 16), ramp((21, 37, 3), 3)
      Image.fromarray(g8).save(f'{d}/L.png')
      Image.fromarray(g16).save(f'{d}/I16.png')
      Image.fromarray(rgb).save(f'{d}/RGB.png')
      alpha = (np.arange(21 * 37).reshape(21, 37) % 256).astype(np.uint8)
      Image.fromarray(np.dstack([rgb, alpha])).save(f'{d}/RGBA.png')
      Image.fromarray(np.dstack([g8, alpha]), 'LA').save(f'{d}/LA.png')
      Image.fromarray(g8 % 2 == 1).save(f'{d}/bilevel.png')
      p = Image.fromarray((np.arange(21 * 37).reshape(21, 37) % 5).astype(np.uint8), 'P')
      p.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 250, 251, 252])
      p.save(f'{d}/P.png')
      p.putpalette([0, 0, 0, 60, 60, 60, 120, 120, 120, 180, 180, 180, 240, 240, 240])
      p.save(f'{d}/P-gray.png')
      p.save(f'{d}/P-transparent.png', transparency=2)
      png(f'{d}/rgb16.png', ramp((21, 37, 3), 977, 16), 2)
      png(f'{d}/rgba16-opaque.png', np.dstack([ramp((21, 37, 3), 977, 16), np.full((21, 37), 65535, np.uint16)]), 6)
      # Gamma chunks that would make libpng convert the samples if the reader kept them.
      png(f'{d}/g8-gamma1.png', g8, 0, chunk(b'gAMA', struct.pack('>I', 100000)))
      png(f'{d}/g16-srgb.png', g16, 0, chunk(b'sRGB', b'\\x00'))
      png(f'{d}/g16-gamma.png', g16, 0, chunk(b'gAMA', struct.pack('>I', 45455)))
      """, in: dir)
    func read(_ name: String) throws -> Image { try PNG.read(contentsOf: dir.appendingPathComponent(name)) }
    let g8 = DataFixture.ramp(37, 21, k: 7), g16 = DataFixture.ramp(37, 21, bitDepth: 16, k: 4099)
    let rgb = DataFixture.ramp(37, 21, channels: 3, k: 3), rgb16 = DataFixture.ramp(37, 21, channels: 3, bitDepth: 16, k: 977)
    for (name, want) in [("L", g8), ("I16", g16), ("RGB", rgb), ("RGBA", rgb), ("LA", g8), ("rgb16", rgb16),
                         ("rgba16-opaque", rgb16), ("g8-gamma1", g8), ("g16-srgb", g16), ("g16-gamma", g16)] {
      #expect(try read("\(name).png") == want, "\(name).png")
    }
    #expect(try read("bilevel.png").samples == g8.samples.map { $0 % 2 == 1 ? 255 : 0 })
    let indices = (0..<21 * 37).map { $0 % 5 }
    let colours: [[UInt16]] = [[10, 20, 30], [40, 50, 60], [70, 80, 90], [100, 110, 120], [250, 251, 252]]
    let p = try read("P.png")
    #expect(p.channels == 3 && p.bitDepth == 8 && p.samples == indices.flatMap { colours[$0] })
    for name in ["P-gray", "P-transparent"] {
      let gray = try read("\(name).png")
      #expect(gray.channels == 1 && gray.samples == indices.map { UInt16($0 * 60) }, "\(name).png")
    }
  }

  @Test func translucentSixteenBitPixelsKeepTheirColourToWithinRounding() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try DataFixture.runPython(pythonRamps + pythonPNGWriter + """
      a = np.full((3, 4), 40000, np.uint16); a[0, 0] = 65535
      png(f'{d}/rgba16.png', np.dstack([ramp((3, 4, 3), 977, 16), a]), 6)
      """, in: dir)
    let got = try PNG.read(contentsOf: dir.appendingPathComponent("rgba16.png"))
    let want = DataFixture.ramp(4, 3, channels: 3, bitDepth: 16, k: 977)
    #expect(got.channels == 3 && Array(got.samples.prefix(3)) == Array(want.samples.prefix(3)))
    #expect(zip(got.samples, want.samples).allSatisfy { abs(Int($0) - Int($1)) <= 1 }, "\(got.samples) vs \(want.samples)")
  }

  @Test func pillowReadsOurFiles() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try PNG.write(DataFixture.ramp(37, 21, k: 7), to: dir.appendingPathComponent("g8.png"))
    try PNG.write(DataFixture.ramp(37, 21, bitDepth: 16, k: 4099), to: dir.appendingPathComponent("g16.png"))
    try PNG.write(DataFixture.ramp(37, 21, channels: 3, k: 3), to: dir.appendingPathComponent("rgb.png"))
    try DataFixture.runPython(pythonRamps + """
      from PIL import Image
      for name, want in [('g8', ramp((21, 37), 7)), ('g16', ramp((21, 37), 4099, 16)), ('rgb', ramp((21, 37, 3), 3))]:
          got = np.asarray(Image.open(f'{d}/{name}.png'))
          assert got.shape == want.shape and (got.astype(np.int64) == want).all(), (name, got.dtype, got.shape)
      """, in: dir)
  }

  /// Pillow writes compressed TIFFs through its own libtiff: LZW, PackBits and Deflate from another writer.
  @Test func tiffsWrittenByPillowReadBackIdentically() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try DataFixture.runPython(pythonRamps + """
      from PIL import Image
      for mode, a in [('L', ramp((21, 37), 7)), ('RGB', ramp((21, 37, 3), 3)), ('I16', ramp((21, 37), 4099, 16))]:
          for c in ['raw', 'tiff_lzw', 'packbits', 'tiff_adobe_deflate']:
              Image.fromarray(a).save(f'{d}/{mode}-{c}.tif', compression=c)
      """, in: dir)
    for (mode, want) in [("L", DataFixture.ramp(37, 21, k: 7)), ("RGB", DataFixture.ramp(37, 21, channels: 3, k: 3)),
                         ("I16", DataFixture.ramp(37, 21, bitDepth: 16, k: 4099))] {
      for c in ["raw", "tiff_lzw", "packbits", "tiff_adobe_deflate"] {
        #expect(try TIFF.readImages(contentsOf: dir.appendingPathComponent("\(mode)-\(c).tif")) == [want], "\(mode)-\(c).tif")
      }
    }
  }
}
