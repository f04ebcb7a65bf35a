import Foundation

// MARK: - 8-bit grayscale

/// One 8-bit grayscale image: `width * height` pixels, row-major, 0 = black.
public struct GrayImage: Sendable, Equatable {
  /// Size in pixels.
  public let width, height: Int
  /// `width * height` pixels, row-major.
  public let pixels: [UInt8]

  /// An image of `width` x `height` pixels; `TIFF.encode` checks that `pixels` has that many.
  public init(width: Int, height: Int, pixels: [UInt8]) {
    self.width = width
    self.height = height
    self.pixels = pixels
  }
}

// MARK: - Any supported image

/// An image of 1 (grayscale) or 3 (RGB) channels at 8 or 16 bits per sample: `height * width *
/// channels` samples, row-major with the channels of a pixel interleaved (HWC), each in
/// 0...maxValue. Samples are held as UInt16 at either depth so that one code path serves both.
public struct Image: Sendable, Equatable {
  /// Size in pixels, both positive.
  public let width, height: Int
  /// 1 (grayscale) or 3 (red, green, blue).
  public let channels: Int
  /// 8 or 16 bits per sample.
  public let bitDepth: Int
  /// [H,W,C] row-major.
  public let samples: [UInt16]

  /// Checks the description against the samples; a mismatch throws a `DataError` about "image".
  public init(width: Int, height: Int, channels: Int, bitDepth: Int, samples: [UInt16]) throws {
    guard width > 0, height > 0 else {
      throw DataError(path: "image", "size \(width)x\(height); width and height must be positive")
    }
    guard channels == 1 || channels == 3 else {
      throw DataError(path: "image", "\(channels) channels; images have 1 (grayscale) or 3 (RGB)")
    }
    guard bitDepth == 8 || bitDepth == 16 else {
      throw DataError(path: "image", "bit depth \(bitDepth); images have 8 or 16 bits per sample")
    }
    let (pixels, o1) = width.multipliedReportingOverflow(by: height)
    let (count, o2) = pixels.multipliedReportingOverflow(by: channels)
    guard !o1, !o2, samples.count == count else {
      throw DataError(path: "image", "\(samples.count) samples for a \(width)x\(height) image of \(channels) channel(s)")
    }
    if bitDepth == 8, let k = samples.firstIndex(where: { $0 > 255 }) {
      throw DataError(path: "image", "sample \(samples[k]) at x \(k / channels % width), y \(k / channels / width) "
        + "is over 255, the largest 8-bit value")
    }
    self.init(unchecked: width, height, channels, bitDepth, samples)
  }

  /// For the readers and conversions, which produce consistent images by construction.
  init(unchecked width: Int, _ height: Int, _ channels: Int, _ bitDepth: Int, _ samples: [UInt16]) {
    (self.width, self.height, self.channels, self.bitDepth, self.samples) = (width, height, channels, bitDepth, samples)
  }

  /// An 8-bit grayscale image; `gray` must hold `width * height` pixels (throws otherwise).
  public init(_ gray: GrayImage) throws {
    try self.init(width: gray.width, height: gray.height, channels: 1, bitDepth: 8,
                  samples: gray.pixels.map(UInt16.init))
  }

  /// The largest sample value: 255 or 65535.
  public var maxValue: Int { (1 << bitDepth) - 1 }

  /// Sample `c` of the pixel at (x, y).
  public subscript(x: Int, y: Int, c: Int) -> UInt16 { samples[(y * width + x) * channels + c] }

  // MARK: - Conversions

  /// The image with `channels` (1 or 3) channels at the same depth: gray is copied into red,
  /// green and blue; RGB becomes its luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R 601, as Pillow's
  /// "L" conversion), rounded.
  public func converted(channels target: Int) -> Image {
    if target == channels { return self }
    if target == 3 {
      var out = [UInt16](repeating: 0, count: samples.count * 3)
      for (i, v) in samples.enumerated() { (out[3 * i], out[3 * i + 1], out[3 * i + 2]) = (v, v, v) }
      return Image(unchecked: width, height, 3, bitDepth, out)
    }
    let out = (0..<width * height).map { i -> UInt16 in
      let r = UInt64(samples[3 * i]), g = UInt64(samples[3 * i + 1]), b = UInt64(samples[3 * i + 2])
      return UInt16((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
    }
    return Image(unchecked: width, height, 1, bitDepth, out)
  }

  /// The image at `bitDepth` (8 or 16): 8 -> 16 multiplies by 257 (255 -> 65535), 16 -> 8
  /// divides by 257, rounded, so that 8 -> 16 -> 8 is exact.
  public func converted(bitDepth target: Int) -> Image {
    if target == bitDepth { return self }
    let out = target == 16 ? samples.map { $0 &* 257 } : samples.map { UInt16((UInt32($0) + 128) / 257) }
    return Image(unchecked: width, height, channels, target, out)
  }

  /// The image as 8-bit grayscale (RGB through luma, 16-bit rounded to 8).
  public func grayImage() -> GrayImage {
    let gray = converted(channels: 1).converted(bitDepth: 8)
    return GrayImage(width: width, height: height, pixels: gray.samples.map { UInt8($0) })
  }

  /// The samples scaled to -1...1 as the trainer scales 8-bit images (x / 127.5 - 1), at either
  /// depth (x / (maxValue / 2) - 1): [H,W,C] row-major.
  public func scaledSamples() -> [Float] {
    let half = Float(maxValue) / 2
    return samples.map { Float($0) / half - 1 }
  }
}

// MARK: - Descriptions

extension Image: CustomStringConvertible {
  /// The size and format, not the samples (which would fill a log).
  public var description: String { "Image(\(width)x\(height), \(channels) channel(s), \(bitDepth)-bit)" }
}

extension GrayImage: CustomStringConvertible {
  /// The size, not the pixels.
  public var description: String { "GrayImage(\(width)x\(height))" }
}
