import Foundation
import SegCore

// MARK: - Synthetic EM slices

/// An 8-bit image and the class index of each of its pixels, as training takes them: `image` is
/// [H,W,C] row-major with C = `channels` (1 gray or 3 RGB, interleaved), `label` [H,W] row-major
/// with values 0..<K (for ISBI-like data 1 = cell interior, 0 = membrane).
public struct LabelledSlice: Sendable {
  public let width, height: Int
  /// Channels per pixel of `image`: 1 or 3.
  public let channels: Int
  public let image: [UInt8]
  public let label: [UInt8]

  /// A slice of `width` x `height` pixels: `image` [H,W,C] interleaved, `label` class indices [H,W].
  public init(width: Int, height: Int, channels: Int = 1, image: [UInt8], label: [UInt8]) {
    (self.width, self.height, self.channels, self.image, self.label) = (width, height, channels, image, label)
  }

  /// A grayscale slice from a binary 0/255 mask (the ISBI files' convention): values above 127
  /// become class 1, the others class 0.
  public init(width: Int, height: Int, image: [UInt8], binaryMask: [UInt8]) {
    self.init(width: width, height: height, image: image, label: binaryMask.map { $0 > 127 ? 1 : 0 })
  }

  /// The label as a binary 0/255 mask (class 1 -> 255, every other class -> 0), as ISBI files hold it.
  public var binaryMask: [UInt8] { label.map { $0 == 1 ? 255 : 0 } }

  /// The image as 8-bit grayscale (RGB through its luma, as `Image.converted(channels:)`).
  public var grayImage: GrayImage {
    GrayImage(width: width, height: height, pixels: channels == 1 ? image : converted(channels: 1).image)
  }

  /// The image as an `Image` of depth 8.
  public var imageFile: Image { Image(unchecked: width, height, channels, 8, image.map(UInt16.init)) }

  /// The slice with `target` (1 or 3) channels: gray copied into R, G and B; RGB to its luma.
  public func converted(channels target: Int) -> LabelledSlice {
    if target == channels { return self }
    let image = imageFile.converted(channels: target).samples.map { UInt8($0) }
    return LabelledSlice(width: width, height: height, channels: target, image: image, label: label)
  }
}

/// ISBI-like electron-microscopy slices: irregular cells (a Voronoi tessellation under a smooth
/// random warp) separated by dark membranes of varying width, with cell texture, dark organelles,
/// blur and noise, so that a model has to learn membrane shape rather than a threshold.
/// Slice `i` depends only on (seed, i).
public enum SyntheticEM {
  /// The largest side a slice may have: one slice of this side takes about 6 GiB while it is made.
  public static let maxSize = 16384
  /// Bytes of one TIFF stack at most (a classic TIFF addresses 4 GiB).
  public static let maxStackBytes = (1 << 32) - (1 << 20)

  /// Bytes of memory making `count` slices of `size` x `size` takes at its peak: every slice's
  /// image and label kept, plus one slice's working arrays (Doubles and the cell map).
  public static func bytesNeeded(count: Int, size: Int) -> Int {
    let pixels = size.multipliedReportingOverflow(by: size)
    guard !pixels.overflow else { return Int.max }
    let kept = count.multipliedReportingOverflow(by: pixels.partialValue * 2)
    return kept.overflow ? Int.max : kept.partialValue + pixels.partialValue * 24
  }

  /// Makes `count` slices of `size` x `size`.
  public static func generate(count: Int, size: Int, seed: UInt64) -> [LabelledSlice] {
    (0..<count).map { slice(size: size, seed: seed, index: UInt64($0)) }
  }

  /// One slice.
  public static func slice(size n: Int, seed: UInt64, index: UInt64) -> LabelledSlice {
    var rng = SplitMix64(seed: seed &+ index &* SplitMix64.increment)
    let cell = Double(n) / Double.random(in: 5.5..<8.5, using: &rng)  // mean cell diameter
    // Jittered grid of cell centres, with a brightness and membrane width per cell.
    var centres: [(x: Double, y: Double, tone: Double, width: Double)] = []
    let cells = Int((Double(n) / cell).rounded(.up)) + 1
    for gy in -1...cells {
      for gx in -1...cells {
        centres.append((
          x: (Double(gx) + Double.random(in: 0.1..<0.9, using: &rng)) * cell,
          y: (Double(gy) + Double.random(in: 0.1..<0.9, using: &rng)) * cell,
          tone: Double.random(in: 150..<215, using: &rng),
          width: Double.random(in: 1.5..<3.5, using: &rng) * max(1, Double(n) / 256)))
      }
    }
    let warp = SmoothField(rng: &rng, waves: 6, wavelength: cell * 1.3, amplitude: cell * 0.18)
    let warp2 = SmoothField(rng: &rng, waves: 6, wavelength: cell * 1.3, amplitude: cell * 0.18)
    let texture = SmoothField(rng: &rng, waves: 10, wavelength: cell * 0.25, amplitude: 12)
    // Small dark organelles (vesicles, mitochondria) inside cells.
    let organelles = (0..<Int(Double(n * n) / (cell * cell) * 3)).map { _ in
      (x: Double.random(in: 0..<Double(n), using: &rng), y: Double.random(in: 0..<Double(n), using: &rng),
       r: Double.random(in: 0.03..<0.09, using: &rng) * cell)
    }

    var label = [UInt8](repeating: 1, count: n * n)  // class 1: cell interior
    var raw = [Double](repeating: 0, count: n * n)
    let bucket = cell
    let grid = Dictionary(grouping: centres.indices) { i in
      Int((centres[i].x / bucket).rounded(.down)) &* 7919 &+ Int((centres[i].y / bucket).rounded(.down))
    }
    for y in 0..<n {
      for x in 0..<n {
        let px = Double(x) + warp.value(Double(x), Double(y))
        let py = Double(y) + warp2.value(Double(x), Double(y))
        // Nearest and second-nearest centres among the neighbouring buckets.
        var d1 = Double.infinity, d2 = Double.infinity, i1 = 0, i2 = 0
        let bx = Int((px / bucket).rounded(.down)), by = Int((py / bucket).rounded(.down))
        for oy in -2...2 {
          for ox in -2...2 {
            for i in grid[(bx + ox) &* 7919 &+ (by + oy)] ?? [] {
              let dx = centres[i].x - px, dy = centres[i].y - py
              let d = (dx * dx + dy * dy).squareRoot()
              if d < d1 { (d2, i2, d1, i1) = (d1, i1, d, i) } else if d < d2 { (d2, i2) = (d, i) }
            }
          }
        }
        // Distance to the bisector between the two nearest centres.
        let gap = (d2 - d1) / 2
        let halfWidth = (centres[i1].width + centres[i2].width) / 4
        let k = y * n + x
        if gap < halfWidth {
          label[k] = 0
          raw[k] = 55 + 25 * gap / max(halfWidth, 1e-9)
        } else {
          var v = centres[i1].tone + texture.value(Double(x), Double(y))
          for o in organelles where abs(o.x - Double(x)) < o.r && abs(o.y - Double(y)) < o.r {
            let dx = o.x - Double(x), dy = o.y - Double(y)
            if dx * dx + dy * dy < o.r * o.r { v -= 60 }
          }
          raw[k] = v
        }
      }
    }
    let blurred = boxBlur(raw, n: n)
    let image = blurred.map { v -> UInt8 in
      UInt8(clamping: Int((v + rng.normal() * 9).rounded()))
    }
    return LabelledSlice(width: n, height: n, image: image, label: label)
  }

  /// A 3x3 box blur with clamped borders (the microscope's point spread, roughly).
  static func boxBlur(_ v: [Double], n: Int) -> [Double] {
    var out = v
    for y in 0..<n {
      for x in 0..<n {
        var s = 0.0
        for dy in -1...1 {
          for dx in -1...1 { s += v[min(max(y + dy, 0), n - 1) * n + min(max(x + dx, 0), n - 1)] }
        }
        out[y * n + x] = s / 9
      }
    }
    return out
  }
}

// MARK: - Helpers

/// A smooth random field: a sum of plane waves of about one wavelength.
struct SmoothField {
  let waves: [(kx: Double, ky: Double, phase: Double, amp: Double)]

  init(rng: inout SplitMix64, waves count: Int, wavelength: Double, amplitude: Double) {
    waves = (0..<count).map { _ in
      let angle = Double.random(in: 0..<(2 * .pi), using: &rng)
      let k = 2 * Double.pi / (wavelength * Double.random(in: 0.7..<1.4, using: &rng))
      return (k * cos(angle), k * sin(angle), Double.random(in: 0..<(2 * .pi), using: &rng),
              amplitude / Double(count).squareRoot())
    }
  }

  func value(_ x: Double, _ y: Double) -> Double {
    waves.reduce(0) { $0 + $1.amp * sin($1.kx * x + $1.ky * y + $1.phase) }
  }
}

extension SplitMix64 {
  /// A standard normal value (Box-Muller) from the standard library's uniform draws, as the
  /// synthetic slices have always been drawn (`RandomBits.nextNormal` draws its uniforms otherwise).
  mutating func normal() -> Double {
    let u = Double.random(in: Double.ulpOfOne..<1, using: &self), v = Double.random(in: 0..<1, using: &self)
    return (-2 * Foundation.log(u)).squareRoot() * cos(2 * .pi * v)
  }
}
