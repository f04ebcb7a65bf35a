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

private let volumeFunction = """
  import sys, numpy as np, tifffile
  def volume(shape, k):
      return (np.arange(int(np.prod(shape))).reshape(shape) * k % 251).astype(np.uint8)
  d = sys.argv[1]

  """

@Suite(.enabled(if: DataFixture.hasTifffile, "needs python3 with numpy and tifffile (pip install tifffile)"))
struct TIFFInteropTests {
  @Test func filesWrittenByTifffileReadBackIdentically() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    let script = volumeFunction + """
      # minisblack: tifffile would take a leading dimension of 3 for planar RGB.
      a, gray = volume((3, 5, 7), 7), {'photometric': 'minisblack'}
      tifffile.imwrite(f'{d}/plain.tif', a, **gray)
      tifffile.imwrite(f'{d}/imagej.tif', a, imagej=True, **gray)
      tifffile.imwrite(f'{d}/bigendian.tif', a, byteorder='>', **gray)
      tifffile.imwrite(f'{d}/imagej-bigendian.tif', a, imagej=True, byteorder='>', **gray)
      tifffile.imwrite(f'{d}/strips.tif', a, rowsperstrip=2, **gray)
      with tifffile.TiffWriter(f'{d}/mixed.tif') as w:
          w.write(volume((5, 7), 3))
          w.write(volume((40, 300), 5))
          w.write(volume((1, 1), 1))
      """
    let run = DataFixture.python(["-c", script, dir.path])
    try #require(run.status == 0, "\(run.output)")

    let a = DataFixture.stack(pages: 3, height: 5, width: 7, k: 7)
    for name in ["plain", "imagej", "bigendian", "imagej-bigendian", "strips"] {
      #expect(try TIFF.read(contentsOf: dir.appendingPathComponent("\(name).tif")) == a, "\(name).tif")
    }
    let mixed = DataFixture.stack(pages: 1, height: 5, width: 7, k: 3) + DataFixture.stack(pages: 1, height: 40, width: 300, k: 5)
      + DataFixture.stack(pages: 1, height: 1, width: 1, k: 1)
    #expect(try TIFF.read(contentsOf: dir.appendingPathComponent("mixed.tif")) == mixed)
  }

  @Test func unsupportedTifffileOutputIsRejectedWithTheReason() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    let script = volumeFunction + """
      a = volume((2, 5, 7), 7)
      tifffile.imwrite(f'{d}/u16.tif', a.astype(np.uint16))
      tifffile.imwrite(f'{d}/zlib.tif', a, compression='zlib')
      tifffile.imwrite(f'{d}/rgb.tif', np.zeros((5, 7, 3), np.uint8), photometric='rgb')
      tifffile.imwrite(f'{d}/tiled.tif', np.zeros((32, 32), np.uint8), tile=(16, 16))
      tifffile.imwrite(f'{d}/int8.tif', a.astype(np.int8))
      """
    let run = DataFixture.python(["-c", script, dir.path])
    try #require(run.status == 0, "\(run.output)")
    let cases = [
      ("u16", "unsupported bit depth 16"), ("zlib", "unsupported compression 8 (Deflate)"),
      ("rgb", "unsupported samples per pixel 3"),
      ("tiled", "unsupported tiled layout"), ("int8", "unsupported sample format 2 (signed integer)"),
    ]
    for (name, fragment) in cases {
      let url = dir.appendingPathComponent("\(name).tif")
      #expect("\(name).tif") { try TIFF.read(contentsOf: url) } throws: { error in
        guard let error = error as? DataError else { return false }
        return error.path == url.path && error.reason.contains("page 0: " + fragment)
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
    let script = volumeFunction + """
      expected = list(volume((2, 5, 7), 3)) + [volume((40, 300), 5), volume((2, 9000), 11)]
      with tifffile.TiffFile(f'{d}/ours.tif') as f:
          assert f.byteorder == '<', f.byteorder
          assert len(f.pages) == len(expected), len(f.pages)
          for page, want in zip(f.pages, expected):
              assert page.compression == 1 and page.photometric == 1 and page.dtype == np.uint8
              got = page.asarray()
              assert got.shape == want.shape, (got.shape, want.shape)
              assert (got == want).all()
      print('ok')
      """
    let run = DataFixture.python(["-c", script, dir.path])
    #expect(run.status == 0 && run.output.contains("ok"), "\(run.output)")
  }
}
