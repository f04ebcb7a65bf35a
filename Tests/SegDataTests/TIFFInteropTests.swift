import Foundation
import Testing

@testable import SegData

// MARK: - Interoperability with Python's tifffile

extension DataFixture {
  /// Pages whose pixel at flat index i (over the whole stack) is i * k mod 251, as `volume` in
  /// the Python scripts below.
  static func stack(pages: Int, height: Int, width: Int, k: Int) -> [GrayImage] {
    (0..<pages).map { p in
      GrayImage(width: width, height: height, pixels: (0..<width * height).map {
        UInt8(((p * width * height + $0) * k) % 251)
      })
    }
  }
}

/// `volume` (8-bit, as the stacks above) and `ramp` (as `DataFixture.ramp`) for the scripts.
let pythonRamps = """
  import sys, numpy as np
  def volume(shape, k):
      return (np.arange(int(np.prod(shape))).reshape(shape) * k % 251).astype(np.uint8)
  def ramp(shape, k, bits=8):
      m, t = (251, np.uint8) if bits == 8 else (65521, np.uint16)
      return (np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) * k % m).astype(t)
  d = sys.argv[1]

  """

@Suite(.enabled(if: DataFixture.hasTifffile, "needs Python with numpy and tifffile: run `bash scripts/setup.sh --tests`"))
struct TIFFInteropTests {
  @Test func filesWrittenByTifffileReadBackIdentically() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try DataFixture.runPython(pythonRamps + """
      import tifffile
      # minisblack: tifffile would take a leading dimension of 3 for planar RGB.
      a, gray = volume((3, 5, 7), 7), {'photometric': 'minisblack'}
      tifffile.imwrite(f'{d}/plain.tif', a, **gray)
      tifffile.imwrite(f'{d}/imagej.tif', a, imagej=True, **gray)
      tifffile.imwrite(f'{d}/bigendian.tif', a, byteorder='>', **gray)
      tifffile.imwrite(f'{d}/imagej-bigendian.tif', a, imagej=True, byteorder='>', **gray)
      tifffile.imwrite(f'{d}/strips.tif', a, rowsperstrip=2, **gray)
      tifffile.imwrite(f'{d}/zlib.tif', a, compression='zlib', **gray)
      tifffile.imwrite(f'{d}/tiled.tif', a, tile=(16, 16), **gray)
      with tifffile.TiffWriter(f'{d}/mixed.tif') as w:
          w.write(volume((5, 7), 3))
          w.write(volume((40, 300), 5))
          w.write(volume((1, 1), 1))
      """, in: dir)

    let a = DataFixture.stack(pages: 3, height: 5, width: 7, k: 7)
    for name in ["plain", "imagej", "bigendian", "imagej-bigendian", "strips", "zlib", "tiled"] {
      #expect(try TIFF.read(contentsOf: dir.appendingPathComponent("\(name).tif")) == a, "\(name).tif")
    }
    let mixed = DataFixture.stack(pages: 1, height: 5, width: 7, k: 3) + DataFixture.stack(pages: 1, height: 40, width: 300, k: 5)
      + DataFixture.stack(pages: 1, height: 1, width: 1, k: 1)
    #expect(try TIFF.read(contentsOf: dir.appendingPathComponent("mixed.tif")) == mixed)
  }

  @Test func sixteenBitRGBTiledPlanarAndBilevelFilesFromTifffile() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try DataFixture.runPython(pythonRamps + """
      import tifffile
      g16, rgb8, rgb16 = ramp((21, 37), 4099, 16), ramp((21, 37, 3), 3), ramp((21, 37, 3), 977, 16)
      tifffile.imwrite(f'{d}/g16.tif', g16)
      tifffile.imwrite(f'{d}/g16-be-zlib.tif', g16, byteorder='>', compression='zlib')
      tifffile.imwrite(f'{d}/g16-tiled.tif', g16, tile=(16, 32))
      tifffile.imwrite(f'{d}/rgb8.tif', rgb8, photometric='rgb')
      tifffile.imwrite(f'{d}/rgb8-planar.tif', np.moveaxis(rgb8, 2, 0), photometric='rgb', planarconfig='separate')
      tifffile.imwrite(f'{d}/rgb16-tiled-zlib.tif', rgb16, photometric='rgb', tile=(16, 16), compression='zlib')
      tifffile.imwrite(f'{d}/rgba8.tif', np.dstack([rgb8, np.full((21, 37), 7, np.uint8)]), photometric='rgb', extrasamples=['unassalpha'])
      tifffile.imwrite(f'{d}/bilevel.tif', ramp((21, 37), 3) % 2 == 1, photometric='minisblack')
      """, in: dir)
    func read(_ name: String) throws -> [Image] { try TIFF.readImages(contentsOf: dir.appendingPathComponent(name)) }
    let g16 = DataFixture.ramp(37, 21, bitDepth: 16, k: 4099), rgb8 = DataFixture.ramp(37, 21, channels: 3, k: 3)
    #expect(try read("g16.tif") == [g16])
    #expect(try read("g16-be-zlib.tif") == [g16])
    #expect(try read("g16-tiled.tif") == [g16])
    #expect(try read("rgb8.tif") == [rgb8])
    #expect(try read("rgb8-planar.tif") == [rgb8])
    #expect(try read("rgb16-tiled-zlib.tif") == [DataFixture.ramp(37, 21, channels: 3, bitDepth: 16, k: 977)])
    #expect(try read("rgba8.tif") == [rgb8])
    let gray = DataFixture.ramp(37, 21, k: 3)
    #expect(try read("bilevel.tif").map(\.samples) == [gray.samples.map { $0 % 2 == 1 ? 255 : 0 }])
  }

  @Test func unsupportedTifffileOutputIsRejectedWithTheReason() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    try DataFixture.runPython(pythonRamps + """
      import tifffile
      a = volume((2, 5, 7), 7)
      tifffile.imwrite(f'{d}/int8.tif', a.astype(np.int8))
      tifffile.imwrite(f'{d}/float.tif', a.astype(np.float32))
      tifffile.imwrite(f'{d}/u32.tif', a.astype(np.uint32))
      """, in: dir)
    let cases = [
      ("int8", "page 0: unsupported sample format 2 (signed integer)"),
      ("float", "page 0: unsupported sample format 3 (floating point)"),
      ("u32", "page 0: unsupported bit depth 32"),
    ]
    for (name, fragment) in cases {
      let url = dir.appendingPathComponent("\(name).tif")
      #expect("\(name).tif") { try TIFF.readImages(contentsOf: url) } throws: { error in
        guard let error = error as? DataError else { return false }
        return error.path == url.path && error.reason.contains(fragment)
      }
    }
  }

  @Test func tifffileReadsOurFiles() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    // 40x300 and 2x9000 span several strips.
    let pages = DataFixture.stack(pages: 2, height: 5, width: 7, k: 3) + DataFixture.stack(pages: 1, height: 40, width: 300, k: 5)
      + DataFixture.stack(pages: 1, height: 2, width: 9000, k: 11)
    try TIFF.write(pages, to: dir.appendingPathComponent("ours.tif"))
    try TIFF.write(pages, to: dir.appendingPathComponent("ours-zlib.tif"), compression: .deflate)
    let kinds = [DataFixture.ramp(37, 21, bitDepth: 16, k: 4099), DataFixture.ramp(37, 21, channels: 3, k: 3),
                 DataFixture.ramp(37, 21, channels: 3, bitDepth: 16, k: 977)]
    try TIFF.write(kinds, to: dir.appendingPathComponent("kinds.tif"), compression: .deflate)
    try TIFF.write(kinds, to: dir.appendingPathComponent("kinds-tiled.tif"), tileSize: 16)
    try DataFixture.runPython(pythonRamps + """
      import tifffile
      expected = list(volume((2, 5, 7), 3)) + [volume((40, 300), 5), volume((2, 9000), 11)]
      for name, compression in [('ours', 1), ('ours-zlib', 8)]:
          with tifffile.TiffFile(f'{d}/{name}.tif') as f:
              assert f.byteorder == '<', f.byteorder
              assert len(f.pages) == len(expected), len(f.pages)
              for page, want in zip(f.pages, expected):
                  assert page.compression == compression and page.photometric == 1 and page.dtype == np.uint8
                  got = page.asarray()
                  assert got.shape == want.shape, (got.shape, want.shape)
                  assert (got == want).all()
      kinds = [ramp((21, 37), 4099, 16), ramp((21, 37, 3), 3), ramp((21, 37, 3), 977, 16)]
      for name in ['kinds', 'kinds-tiled']:
          with tifffile.TiffFile(f'{d}/{name}.tif') as f:
              assert len(f.pages) == 3
              for page, want in zip(f.pages, kinds):
                  got = page.asarray()
                  assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
                  assert (got == want).all(), name
      print('ok')
      """, in: dir)
  }
}
