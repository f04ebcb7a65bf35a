import Foundation
import Testing
@testable import SegData
import CTIFF

@Suite struct DebugTmp {
  @Test func dbg() throws {
    let pages = [DataFixture.page(7, 5), DataFixture.page(3, 300, seed: 1)]
    let bytes = [UInt8](try TIFF.encode(pages, compression: .deflate))
    print("total", bytes.count)
    for n in [205, 206, 209, 210] {
      do {
        let r = try TIFF.decode(Data(bytes[..<n]))
        print(n, r.count, r.map { "\($0.width)x\($0.height)" }, r == pages, r.count > 1 ? Array(r[1].pixels.suffix(20)) : [], Array(pages[1].pixels.suffix(20)))
      } catch { print(n, error) }
    }
    let file = TIFFMemoryFile(bytes: Array(bytes[..<206]), name: "x")
    let tif = LibTIFF.open(file, mode: "r")!
    print(file.errors)
    TIFFClose(tif)
  }
}
