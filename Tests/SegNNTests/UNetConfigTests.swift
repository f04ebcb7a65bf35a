import SegCore
import SegNN
import Testing

@Suite struct UNetConfigTests {
  @Test func referenceGeometry() {
    let c = UNetConfig()
    let g = c.geometry(input: 572)
    #expect(g?.skips == [568, 280, 136, 64])
    #expect(g?.bottleneck == 28)
    #expect(g?.output == 388)
    #expect(c.parameterCount == 34_512_258)
  }

  @Test func invalidInputSizeNamesTheSettingAndNearestSizes() {
    var c = UNetConfig()
    c.inputSize = 570
    #expect { try c.validate() } throws: { ($0 as? SettingError) .map { $0.setting == .inputSize && $0.value == "570" } == true && "\($0)".contains("572") }
  }

  @Test func samePaddingKeepsTheSize() {
    var c = UNetConfig()
    c.padding = .same
    #expect(c.geometry(input: 128)?.output == 128)
    #expect(c.geometry(input: 120) == nil)
  }
}
