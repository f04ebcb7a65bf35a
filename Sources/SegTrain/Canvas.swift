import SegData

// MARK: - Canvas

/// A white 8-bit RGB raster [H,W,3] (row-major, channels last) to draw pictures for people into:
/// lines, filled rectangles, RGB pictures and 5x7 text. The training curves (`TensorBoardCurves`)
/// and the evaluation's contact sheet (`ContactSheet`) are drawn with it and written as PNG.
struct Canvas {
  let width, height: Int
  var pixels: [UInt8]

  init(width: Int, height: Int) {
    (self.width, self.height) = (width, height)
    pixels = [UInt8](repeating: 255, count: width * height * 3)
  }

  mutating func set(_ x: Int, _ y: Int, _ c: Overlay.Colour) {
    guard (0..<width).contains(x), (0..<height).contains(y) else { return }
    let i = (y * width + x) * 3
    (pixels[i], pixels[i + 1], pixels[i + 2]) = (c.red, c.green, c.blue)
  }

  /// A line two pixels thick from (x0, y0) to (x1, y1) (Bresenham).
  mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: Overlay.Colour, thick: Bool = true) {
    var (x, y) = (x0, y0)
    let (dx, dy) = (abs(x1 - x0), -abs(y1 - y0))
    let (sx, sy) = (x0 < x1 ? 1 : -1, y0 < y1 ? 1 : -1)
    var err = dx + dy
    while true {
      set(x, y, c)
      if thick { set(x + 1, y, c); set(x, y + 1, c) }
      if x == x1 && y == y1 { break }
      let e2 = 2 * err
      if e2 >= dy { err += dy; x += sx }
      if e2 <= dx { err += dx; y += sy }
    }
  }

  /// A filled rectangle `w` x `h` with its top-left corner at (x, y).
  mutating func fill(_ x: Int, _ y: Int, _ w: Int, _ h: Int, _ c: Overlay.Colour) {
    for yy in max(y, 0)..<min(y + h, height) where x < width { for xx in max(x, 0)..<min(x + w, width) { set(xx, yy, c) } }
  }

  /// An RGB picture `rgb` [h,w,3] (row-major) with its top-left corner at (x, y), clipped to the canvas.
  mutating func draw(rgb: [UInt8], width w: Int, height h: Int, at x: Int, _ y: Int) {
    for r in 0..<h where (0..<height).contains(y + r) {
      for col in 0..<w where (0..<width).contains(x + col) {
        let s = (r * w + col) * 3, d = ((y + r) * width + x + col) * 3
        (pixels[d], pixels[d + 1], pixels[d + 2]) = (rgb[s], rgb[s + 1], rgb[s + 2])
      }
    }
  }

  /// `text` with its top-left corner at (x, y), each font pixel `scale` pixels wide; a character
  /// the font lacks is drawn as '?'.
  mutating func text(_ text: String, _ x: Int, _ y: Int, scale: Int = 2, _ c: Overlay.Colour = (0, 0, 0)) {
    for (n, ch) in text.enumerated() where ch != " " {
      guard let rows = CanvasFont.glyphs[ch] ?? CanvasFont.glyphs["?"] else { continue }
      for (r, row) in rows.enumerated() {
        for (col, bit) in row.enumerated() where bit == "#" {
          for a in 0..<scale { for b in 0..<scale { set(x + (n * 6 + col) * scale + a, y + r * scale + b, c) } }
        }
      }
    }
  }

  /// Width in pixels of `text` at `scale`.
  static func textWidth(_ text: String, scale: Int = 2) -> Int { text.count * 6 * scale - scale }

  /// Height in pixels of a line of text at `scale`.
  static func textHeight(scale: Int = 2) -> Int { 7 * scale }

  /// The canvas as an 8-bit RGB `Image`, for the PNG writer.
  func image() throws -> Image {
    try Image(width: width, height: height, channels: 3, bitDepth: 8, samples: pixels.map(UInt16.init))
  }

  // MARK: - Resampling

  /// `rgb` [h,w,3] resampled to [th,tw,3]: each target pixel the mean of the source pixels it
  /// covers when shrinking (so thin membranes fade rather than vanish), the nearest source pixel
  /// when enlarging.
  static func resample(_ rgb: [UInt8], width w: Int, height h: Int, to tw: Int, _ th: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: tw * th * 3)
    for ty in 0..<th {
      let y0 = ty * h / th, y1 = max((ty + 1) * h / th, y0 + 1)
      for tx in 0..<tw {
        let x0 = tx * w / tw, x1 = max((tx + 1) * w / tw, x0 + 1)
        var sum = (0, 0, 0)
        for y in y0..<y1 {
          for x in x0..<x1 {
            let s = (y * w + x) * 3
            sum = (sum.0 + Int(rgb[s]), sum.1 + Int(rgb[s + 1]), sum.2 + Int(rgb[s + 2]))
          }
        }
        let n = (y1 - y0) * (x1 - x0), d = (ty * tw + tx) * 3
        (out[d], out[d + 1], out[d + 2]) = (UInt8((sum.0 + n / 2) / n), UInt8((sum.1 + n / 2) / n), UInt8((sum.2 + n / 2) / n))
      }
    }
    return out
  }
}
