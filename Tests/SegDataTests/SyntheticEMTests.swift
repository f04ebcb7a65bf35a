import SegData
import Testing

@Suite struct SyntheticEMTests {
  @Test func slicesAreSeededAndLabelsBinary() {
    let a = SyntheticEM.slice(size: 48, seed: 4, index: 1)
    let b = SyntheticEM.slice(size: 48, seed: 4, index: 1)
    let c = SyntheticEM.slice(size: 48, seed: 4, index: 2)
    #expect(a.image == b.image && a.label == b.label)
    #expect(a.image != c.image)
    #expect(Set(a.label) == [0, 1] && a.channels == 1)  // class indices: membrane 0, interior 1
    #expect(a.image.count == 48 * 48)
  }

  @Test func membranesAreDarkAndAMinority() {
    let s = SyntheticEM.slice(size: 96, seed: 1, index: 0)
    let membrane = s.label.indices.filter { s.label[$0] == 0 }
    let interior = s.label.indices.filter { s.label[$0] == 1 }
    let fraction = Double(membrane.count) / Double(s.label.count)
    #expect(fraction > 0.03 && fraction < 0.4, "membrane fraction \(fraction)")
    let meanM = membrane.reduce(0.0) { $0 + Double(s.image[$1]) } / Double(membrane.count)
    let meanI = interior.reduce(0.0) { $0 + Double(s.image[$1]) } / Double(interior.count)
    #expect(meanM + 40 < meanI, "membrane mean \(meanM), interior mean \(meanI)")
  }

  @Test func slicesConvertBetweenGrayAndRGB() {
    let s = SyntheticEM.slice(size: 16, seed: 2, index: 0)
    let rgb = s.converted(channels: 3)
    #expect(rgb.channels == 3 && rgb.label == s.label && rgb.image.count == 16 * 16 * 3)
    let copied: [UInt8] = s.image.flatMap { (v: UInt8) -> [UInt8] in [v, v, v] }
    #expect(rgb.image == copied)
    #expect(rgb.converted(channels: 1).image == s.image && rgb.grayImage.pixels == s.image)
    #expect(LabelledSlice(width: 2, height: 1, image: [5, 6], binaryMask: [0, 255]).label == [0, 1])
  }
}
