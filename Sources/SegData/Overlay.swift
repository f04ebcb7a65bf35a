import SegCore

// MARK: - Overlay

/// Pictures of a segmentation a person can look at: the grayscale image with each foreground class
/// tinted in its own colour and the outline of every foreground region drawn in that colour at
/// full strength; background pixels keep their gray.
public enum Overlay {
  /// An RGB colour, 8 bits per channel.
  public typealias Colour = (red: UInt8, green: UInt8, blue: UInt8)

  /// Colours of the foreground classes 1, 2, ... (cycled beyond the last): strong, mutually
  /// distinct hues (from Sasha Trubetskoy's list of 20 distinct colours), readable over gray.
  public static let palette: [Colour] = [
    (60, 180, 75), (230, 25, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
  ]

  /// The colour of foreground class `c` (c >= 1).
  public static func colour(ofClass c: Int) -> Colour { palette[(c - 1) % palette.count] }

  /// The overlay of `classes` [H,W] (row-major, class indices, 0 = background) on `image`, as RGB
  /// [H,W,3] (row-major, channels last): a pixel of class c > 0 is tinted as
  /// round((1 - alpha) * gray + alpha * colour(c)), except on its region's outline (a 4-neighbour
  /// in the image has another class), which gets colour(c) itself; class-0 pixels stay gray.
  public static func render(image: GrayImage, classes: [Int32], alpha: Double = 0.35) throws -> [UInt8] {
    let (w, h) = (image.width, image.height)
    guard image.pixels.count == w * h else {
      throw TensorError(op: "Overlay", "\(image.pixels.count) pixels for a \(w)x\(h) image")
    }
    guard classes.count == w * h else {
      throw TensorError(op: "Overlay", "\(classes.count) class indices for a \(w)x\(h) image; need one per pixel")
    }
    if let bad = classes.firstIndex(where: { $0 < 0 }) {
      throw TensorError(op: "Overlay", "class \(classes[bad]) at x \(bad % w), y \(bad / w) is negative; classes are indices 0..<K")
    }
    guard alpha.isFinite, (0...1).contains(alpha) else {
      throw TensorError(op: "Overlay", "alpha \(alpha) is not an opacity in [0, 1]")
    }
    var rgb = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h {
      for x in 0..<w {
        let p = y * w + x, gray = image.pixels[p], c = classes[p]
        guard c > 0 else {
          (rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]) = (gray, gray, gray)
          continue
        }
        let colour = Self.colour(ofClass: Int(c))
        if isOutline(x, y, classes: classes, width: w, height: h) {
          (rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]) = colour
        } else {
          let g = (1 - alpha) * Double(gray)
          let tint = { (v: UInt8) in UInt8((g + alpha * Double(v)).rounded()) }
          (rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]) = (tint(colour.red), tint(colour.green), tint(colour.blue))
        }
      }
    }
    return rgb
  }

  /// Whether a 4-neighbour of (x, y) inside the image has another class (the image's edge is no
  /// boundary: the region may go on beyond it).
  public static func isOutline(_ x: Int, _ y: Int, classes: [Int32], width w: Int, height h: Int) -> Bool {
    let c = classes[y * w + x]
    return (x > 0 && classes[y * w + x - 1] != c) || (x + 1 < w && classes[y * w + x + 1] != c)
      || (y > 0 && classes[(y - 1) * w + x] != c) || (y + 1 < h && classes[(y + 1) * w + x] != c)
  }
}
