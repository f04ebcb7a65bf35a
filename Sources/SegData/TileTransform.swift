import Foundation
import SegCore

// MARK: - Applying a plan

/// Applies `AugmentationPlan`s to tiles. All geometric transforms (GeometricMap.swift) are composed
/// into one map from output pixels to source positions, so image and label move together and each
/// is resampled once: bilinear or bicubic for images, nearest for labels, both mirrored
/// (`reflectIndex`) where a position falls outside. The photometric units (Photometric.swift)
/// then change the image's values only.
public enum Augmentation {
  /// The image and its label under one plan. The image's size is the frame the transforms refer
  /// to (crop fractions, elastic control points, the centre of rotation); the label tile is centred
  /// on it (any size, its margins even) and the label comes out as the centred `labelSize` window
  /// (default: the label's own size), e.g. a 572 image with a 572 label cut the same way gives the
  /// 388 target of a valid U-Net.
  public static func apply(
    _ plan: AugmentationPlan, image: ImageTile, label: LabelTile, labelSize: (height: Int, width: Int)? = nil
  ) -> (image: ImageTile, label: LabelTile) {
    let out = labelSize ?? (label.height, label.width)
    let frame = (height: image.height, width: image.width)
    precondition((frame.height - out.height) % 2 == 0 && (frame.width - out.width) % 2 == 0
      && (label.height - out.height) % 2 == 0 && (label.width - out.width) % 2 == 0
      && out.height <= frame.height && out.width <= frame.width,
      "Augmentation.apply: a \(out.height)x\(out.width) label window must be centred in the \(frame.height)x\(frame.width) image and the \(label.height)x\(label.width) label")
    let map = GeometricMap(plan, frameHeight: frame.height, frameWidth: frame.width)
    return (apply(plan, image: image, map: map), resample(label, map: map, height: out.height, width: out.width))
  }

  /// The image alone under a plan; its size is the frame.
  public static func apply(_ plan: AugmentationPlan, image: ImageTile) -> ImageTile {
    apply(plan, image: image, map: GeometricMap(plan, frameHeight: image.height, frameWidth: image.width))
  }

  /// The label alone under a plan's geometric transforms; its size is the frame.
  public static func apply(_ plan: AugmentationPlan, label: LabelTile) -> LabelTile {
    resample(label, map: GeometricMap(plan, frameHeight: label.height, frameWidth: label.width), height: label.height, width: label.width)
  }

  private static func apply(_ plan: AugmentationPlan, image: ImageTile, map: GeometricMap) -> ImageTile {
    var out = map.isIdentity ? image : resample(image, map: map, interpolation: plan.interpolation)
    if !plan.isIntensityIdentity { adjustIntensity(&out, plan) }
    return out
  }

  // MARK: Resampling

  private static func resample(_ src: ImageTile, map: GeometricMap, interpolation: ImageInterpolation) -> ImageTile {
    let (h, w, c) = (src.height, src.width, src.channels)
    var values = [Float](repeating: 0, count: h * w * c)
    var us = [Double](repeating: 0, count: w), vs = us
    let cx = Double(w - 1) / 2, cy = Double(h - 1) / 2
    src.values.withUnsafeBufferPointer { s in
      values.withUnsafeMutableBufferPointer { o in
        for y in 0..<h {
          map.row(y, from: 0, count: w, us: &us, vs: &vs)
          for x in 0..<w {
            let base = (y * w + x) * c
            switch interpolation {
            case .bilinear: bilinear(s, h, w, c, us[x] + cx, vs[x] + cy, into: o, at: base)
            case .bicubic: bicubic(s, h, w, c, us[x] + cx, vs[x] + cy, into: o, at: base)
            }
          }
        }
      }
    }
    return ImageTile(height: h, width: w, channels: c, values: values)
  }

  /// The centred `height` x `width` window of the frame, each pixel the label nearest its source.
  private static func resample(_ src: LabelTile, map: GeometricMap, height: Int, width: Int) -> LabelTile {
    let (sh, sw) = (src.height, src.width)
    let oy = (map.frameHeight - height) / 2, ox = (map.frameWidth - width) / 2
    let cx = Double(sw - 1) / 2, cy = Double(sh - 1) / 2
    var classes = [UInt8](repeating: 0, count: height * width)
    var us = [Double](repeating: 0, count: width), vs = us
    for y in 0..<height {
      map.row(y + oy, from: ox, count: width, us: &us, vs: &vs)
      for x in 0..<width {
        // Half-way positions round up, so a half-pixel shift is read the same way everywhere.
        let sx = Int((us[x] + cx + 0.5).rounded(.down)), sy = Int((vs[x] + cy + 0.5).rounded(.down))
        let rx = sx >= 0 && sx < sw ? sx : reflectIndex(sx, size: sw)
        let ry = sy >= 0 && sy < sh ? sy : reflectIndex(sy, size: sh)
        classes[y * width + x] = src.classes[ry * sw + rx]
      }
    }
    return LabelTile(height: height, width: width, classes: classes)
  }

  @inline(__always)
  private static func bilinear(
    _ s: UnsafeBufferPointer<Float>, _ h: Int, _ w: Int, _ c: Int, _ px: Double, _ py: Double,
    into o: UnsafeMutableBufferPointer<Float>, at base: Int
  ) {
    let fx0 = px.rounded(.down), fy0 = py.rounded(.down)
    let ax = Float(px - fx0), ay = Float(py - fy0)
    let x0 = Int(fx0), y0 = Int(fy0)
    let (xa, xb) = x0 >= 0 && x0 + 1 < w ? (x0, x0 + 1) : (reflectIndex(x0, size: w), reflectIndex(x0 + 1, size: w))
    let (ya, yb) = y0 >= 0 && y0 + 1 < h ? (y0, y0 + 1) : (reflectIndex(y0, size: h), reflectIndex(y0 + 1, size: h))
    let i00 = (ya * w + xa) * c, i01 = (ya * w + xb) * c, i10 = (yb * w + xa) * c, i11 = (yb * w + xb) * c
    for k in 0..<c {
      let top = s[i00 + k] * (1 - ax) + s[i01 + k] * ax
      let bottom = s[i10 + k] * (1 - ax) + s[i11 + k] * ax
      o[base + k] = top * (1 - ay) + bottom * ay
    }
  }

  @inline(__always)
  private static func bicubic(
    _ s: UnsafeBufferPointer<Float>, _ h: Int, _ w: Int, _ c: Int, _ px: Double, _ py: Double,
    into o: UnsafeMutableBufferPointer<Float>, at base: Int
  ) {
    let fx0 = px.rounded(.down), fy0 = py.rounded(.down)
    let x0 = Int(fx0), y0 = Int(fy0)
    let (wx0, wx1, wx2, wx3) = cubicWeights(px - fx0), (wy0, wy1, wy2, wy3) = cubicWeights(py - fy0)
    @inline(__always) func tap(_ i: Int, _ n: Int) -> Int { i >= 0 && i < n ? i : reflectIndex(i, size: n) }
    let (xa, xb, xc, xd) = (tap(x0 - 1, w), tap(x0, w), tap(x0 + 1, w), tap(x0 + 2, w))
    let (ya, yb, yc, yd) = (tap(y0 - 1, h) * w, tap(y0, h) * w, tap(y0 + 1, h) * w, tap(y0 + 2, h) * w)
    for k in 0..<c {
      @inline(__always) func row(_ r: Int) -> Float {
        s[(r + xa) * c + k] * wx0 + s[(r + xb) * c + k] * wx1 + s[(r + xc) * c + k] * wx2 + s[(r + xd) * c + k] * wx3
      }
      o[base + k] = row(ya) * wy0 + row(yb) * wy1 + row(yc) * wy2 + row(yd) * wy3
    }
  }

  /// Keys' cubic convolution weights (a = -0.5) of the taps at -1, 0, 1, 2 for a position `f` in
  /// [0, 1) past tap 0; at f = 0 they are exactly (0, 1, 0, 0).
  @inline(__always)
  static func cubicWeights(_ f: Double) -> (Float, Float, Float, Float) {
    (Float(keys(f + 1)), Float(keys(f)), Float(keys(1 - f)), Float(keys(2 - f)))
  }

  @inline(__always)
  static func keys(_ t: Double) -> Double {
    let a = -0.5, x = abs(t)
    if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
    if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
    return 0
  }

  // MARK: Intensity

  /// The photometric units in their order (contrast about each channel's mean, brightness,
  /// noise), then a clip to [-1, 1].
  private static func adjustIntensity(_ tile: inout ImageTile, _ plan: AugmentationPlan) {
    let c = tile.channels, pixels = tile.height * tile.width
    let contrast = Contrast(factor: plan.contrast, of: tile), brightness = Brightness(delta: Float(plan.brightness))
    var noise = Noise(std: plan.noiseStd, seed: plan.noiseSeed)
    tile.values.withUnsafeMutableBufferPointer { v in
      for i in 0..<pixels {
        for k in 0..<c {
          let x = noise.apply(brightness.apply(contrast.apply(v[i * c + k], channel: k)))
          v[i * c + k] = min(max(x, -1), 1)
        }
      }
    }
  }
}
