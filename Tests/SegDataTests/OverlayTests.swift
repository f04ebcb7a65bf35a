import SegData
import Testing

@Suite struct OverlayTests {
  // 6x5: a 3x3 block of class 1 and a 2x3 block of class 2 in the bottom-right corner.
  static let classes: [Int32] = [
    0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 0, 0,
    0, 1, 1, 1, 2, 2,
    0, 1, 1, 1, 2, 2,
    0, 0, 0, 0, 2, 2,
  ]
  static let image = GrayImage(width: 6, height: 5, pixels: (0..<30).map { UInt8($0 * 8 + 7) })

  /// The pixels whose 4-neighbourhood holds another class, worked out by hand: the class-1 block
  /// but its centre; of class 2, all but (5,3) and (5,4), which touch only class 2 and the edge.
  static let outline: Set<Int> = [7, 8, 9, 13, 15, 19, 20, 21, 16, 17, 22, 28]

  @Test func backgroundStaysGrayForegroundIsTintedAndOutlined() throws {
    let rgb = try Overlay.render(image: Self.image, classes: Self.classes)
    #expect(rgb.count == 6 * 5 * 3)
    for p in 0..<30 {
      let (c, g) = (Int(Self.classes[p]), Self.image.pixels[p])
      let pixel = [rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]]
      if c == 0 {
        #expect(pixel == [g, g, g], "pixel \(p)")
        #expect(!Self.outline.contains(p))
        continue
      }
      let colour = Overlay.colour(ofClass: c)
      let full = [colour.red, colour.green, colour.blue]
      if Self.outline.contains(p) {
        #expect(pixel == full, "outline pixel \(p)")
      } else {
        let alpha = 0.35
        let tint = full.map { UInt8(((1 - alpha) * Double(g) + alpha * Double($0)).rounded()) }
        #expect(pixel == tint && pixel != full && pixel != [g, g, g], "interior pixel \(p)")
      }
    }
    // The outline is exactly where a 4-neighbour has another class.
    let drawn = Set((0..<30).filter { Self.classes[$0] > 0 && Overlay.isOutline($0 % 6, $0 / 6, classes: Self.classes, width: 6, height: 5) })
    #expect(drawn == Self.outline)
  }

  @Test func classesHaveDistinctColoursThatCycle() throws {
    let colours = Overlay.palette.map { [$0.red, $0.green, $0.blue] }
    #expect(Set(colours).count == colours.count && colours.allSatisfy { !($0[0] == $0[1] && $0[1] == $0[2]) })
    let n = Overlay.palette.count
    #expect([Overlay.colour(ofClass: 1 + n)].map { [$0.red, $0.green, $0.blue] } == [colours[0]])
    // An image of one class but the background is all tint, with no outline.
    let one = try Overlay.render(image: GrayImage(width: 2, height: 2, pixels: [0, 0, 0, 0]), classes: [3, 3, 3, 3], alpha: 1)
    let c = Overlay.colour(ofClass: 3)
    #expect(one == Array(repeating: [c.red, c.green, c.blue], count: 4).flatMap { $0 })
    let clear = try Overlay.render(image: Self.image, classes: Self.classes, alpha: 0)
    #expect((0..<30).allSatisfy { Self.outline.contains($0) || clear[3 * $0] == Self.image.pixels[$0] })
  }

  @Test func badInputsAreErrors() {
    #expect { try Overlay.render(image: Self.image, classes: [0, 1]) } throws: { "\($0)".contains("2 class indices for a 6x5 image") }
    #expect { try Overlay.render(image: GrayImage(width: 2, height: 2, pixels: [1]), classes: [0, 0, 0, 0]) }
      throws: { "\($0)".contains("1 pixels for a 2x2 image") }
    #expect { try Overlay.render(image: GrayImage(width: 2, height: 1, pixels: [1, 2]), classes: [0, -1]) }
      throws: { "\($0)".contains("class -1 at x 1, y 0") }
    #expect { try Overlay.render(image: Self.image, classes: Self.classes, alpha: 1.5) } throws: { "\($0)".contains("alpha 1.5") }
  }
}
