import Foundation
import SegCore

// MARK: - Tiles

/// An image tile: row-major [height, width, channels] floats, in the model's scaled space
/// (x / 127.5 - 1, so [-1, 1] for 8-bit images).
public struct ImageTile: Equatable, Sendable {
  public var height, width, channels: Int
  public var values: [Float]

  /// A tile holding `values` ([height, width, channels], row-major); their count must match.
  public init(height: Int, width: Int, channels: Int = 1, values: [Float]) {
    precondition(values.count == height * width * channels, "ImageTile: \(values.count) values for \(height)x\(width)x\(channels)")
    (self.height, self.width, self.channels, self.values) = (height, width, channels, values)
  }
}

/// A label tile: row-major [height, width] class indices.
public struct LabelTile: Equatable, Sendable {
  public var height, width: Int
  public var classes: [UInt8]

  /// A tile holding `classes` ([height, width], row-major); their count must match.
  public init(height: Int, width: Int, classes: [UInt8]) {
    precondition(classes.count == height * width, "LabelTile: \(classes.count) labels for \(height)x\(width)")
    (self.height, self.width, self.classes) = (height, width, classes)
  }
}

// MARK: - Randomness

/// The random source augmentation draws from: any of SegCore's generators. SegTrain passes SegNN's
/// `CounterRandom` seeded from (seed, epoch, sample), so every choice is reproducible whatever the
/// thread timing.
public typealias AugmentationRandom = RandomBits

// MARK: - Options

/// How images are resampled by the geometric transforms (labels always take the nearest pixel).
public enum ImageInterpolation: String, Sendable, CaseIterable {
  case bilinear, bicubic
}

/// Which augmentations run and how strongly. The defaults are the set a run with augmentation on
/// uses: the reference's flips, crop-and-zoom and brightness, plus 90-degree rotations, contrast, noise and
/// the paper's elastic deformation. Magnitudes of intensity changes are in the scaled [-1, 1] space.
public struct AugmentationOptions: Equatable, Sendable {
  /// Probability of mirroring left-right (the reference: 0.5).
  public var flipXProbability = 0.5
  /// Probability of mirroring top-bottom (the reference: 0.5).
  public var flipYProbability = 0.5
  /// Whether to rotate by 0, 90, 180 or 270 degrees, drawn uniformly; with both flips this draws
  /// each of the square's eight symmetries equally often.
  public var rotate90 = true
  /// Probability of crop-and-zoom (the reference: always).
  public var cropProbability = 1.0
  /// The largest fraction trimmed from each side, drawn independently per side (the reference: 0.3,
  /// zooming in up to 2.5x); the trimmed rectangle is resized back to the tile.
  public var maxCropFraction = 0.3
  /// Probability of a brightness shift (the reference: always).
  public var brightnessProbability = 1.0
  /// The largest brightness shift, drawn uniformly in +-this (the reference: 0.2).
  public var maxBrightnessDelta = 0.2
  /// Probability of a contrast change.
  public var contrastProbability = 0.5
  /// The contrast factor's range: deviations from each channel's tile mean are multiplied by it.
  public var contrastRange: ClosedRange<Double> = 0.75...1.25
  /// Probability of additive Gaussian noise (images only).
  public var noiseProbability = 0.2
  /// The largest noise standard deviation; each noisy tile draws one uniformly in [0, this].
  public var maxNoiseStd = 0.05
  /// Probability of an elastic deformation (the paper's).
  public var elasticProbability = 0.5
  /// Control points per side of the coarse displacement grid (the paper: 3).
  public var elasticGrid = 3
  /// Standard deviation in pixels of each control point's displacement (the paper: 10).
  public var elasticSigma = 10.0
  /// How images are resampled by the geometric transforms.
  public var interpolation = ImageInterpolation.bilinear

  /// The default set.
  public init() {}

  /// Every augmentation off: drawing gives the identity plan.
  public static var none: AugmentationOptions {
    var o = AugmentationOptions()
    (o.flipXProbability, o.flipYProbability, o.rotate90, o.cropProbability) = (0, 0, false, 0)
    (o.brightnessProbability, o.contrastProbability, o.noiseProbability, o.elasticProbability) = (0, 0, 0, 0)
    return o
  }

  /// Throws `SettingError` naming the first field out of range.
  public func validate() throws {
    let probabilities = [
      (Setting.flipXProbability, flipXProbability), (.flipYProbability, flipYProbability), (.cropProbability, cropProbability),
      (.brightnessProbability, brightnessProbability), (.contrastProbability, contrastProbability),
      (.noiseProbability, noiseProbability), (.elasticProbability, elasticProbability),
    ]
    for (setting, p) in probabilities where !(0...1).contains(p) {
      throw SettingError(setting, value: p, "not a probability; it must be in [0, 1]")
    }
    guard (0..<0.5).contains(maxCropFraction) else {
      throw SettingError(.maxCropFraction, value: maxCropFraction, "must be in [0, 0.5), so that something is left to zoom into")
    }
    guard maxBrightnessDelta >= 0, maxBrightnessDelta.isFinite else {
      throw SettingError(.maxBrightnessDelta, value: maxBrightnessDelta, "must be finite and at least 0")
    }
    guard contrastRange.lowerBound >= 0, contrastRange.upperBound.isFinite else {
      throw SettingError(.contrastRange, value: contrastRange, "must lie in [0, infinity)")
    }
    guard maxNoiseStd >= 0, maxNoiseStd.isFinite else {
      throw SettingError(.maxNoiseStd, value: maxNoiseStd, "must be finite and at least 0")
    }
    guard elasticGrid >= 2 else {
      throw SettingError(.elasticGrid, value: elasticGrid, "control points per side are too few; at least 2 are needed")
    }
    guard elasticSigma >= 0, elasticSigma.isFinite else {
      throw SettingError(.elasticSigma, value: elasticSigma, "must be finite and at least 0")
    }
  }

  // MARK: Drawing

  /// The random choices for one sample. Every augmentation consumes the same draws whether it is
  /// on or off, so changing one probability leaves the other choices of a sample as they were.
  public func draw<R: AugmentationRandom>(_ rng: inout R) -> AugmentationPlan {
    var plan = AugmentationPlan()
    plan.interpolation = interpolation
    func chance(_ p: Double) -> Bool { rng.nextUnit() < p }

    plan.flipX = chance(flipXProbability)
    plan.flipY = chance(flipYProbability)
    let quarter = Int(rng.next() >> 62)
    if rotate90 { plan.rotations = quarter }

    let cropOn = chance(cropProbability)
    let trims = (0..<4).map { _ in rng.nextUnit() * maxCropFraction }
    if cropOn { plan.crop = CropBox(top: trims[0], left: trims[1], bottom: trims[2], right: trims[3]) }

    let brightnessOn = chance(brightnessProbability)
    let delta = (rng.nextUnit() * 2 - 1) * maxBrightnessDelta
    if brightnessOn { plan.brightness = delta }
    let contrastOn = chance(contrastProbability)
    let factor = contrastRange.lowerBound + rng.nextUnit() * (contrastRange.upperBound - contrastRange.lowerBound)
    if contrastOn { plan.contrast = factor }
    let noiseOn = chance(noiseProbability)
    let std = rng.nextUnit() * maxNoiseStd
    let noiseSeed = rng.next()
    if noiseOn { (plan.noiseStd, plan.noiseSeed) = (std, noiseSeed) }

    let elasticOn = chance(elasticProbability)
    let n = elasticGrid
    let dx = (0..<n * n).map { _ in rng.nextNormal() * elasticSigma }
    let dy = (0..<n * n).map { _ in rng.nextNormal() * elasticSigma }
    if elasticOn, elasticSigma > 0 { plan.elastic = DisplacementGrid(size: n, dx: dx, dy: dy) }
    return plan
  }
}

// MARK: - Plans

/// Fractions of a tile trimmed from each side before zooming back to the tile's size.
public struct CropBox: Equatable, Sendable {
  public var top, left, bottom, right: Double

  /// A box trimming the given fractions.
  public init(top: Double = 0, left: Double = 0, bottom: Double = 0, right: Double = 0) {
    (self.top, self.left, self.bottom, self.right) = (top, left, bottom, right)
  }
}

/// The paper's elastic deformation: displacements (in pixels) at `size` x `size` control points
/// spread evenly over the tile, corners included, interpolated to every pixel by cubic convolution.
public struct DisplacementGrid: Equatable, Sendable {
  public var size: Int
  /// Row-major [size, size] displacements along x and along y.
  public var dx, dy: [Double]

  /// A grid of `size` x `size` control points; `dx` and `dy` hold size * size values each.
  public init(size: Int, dx: [Double], dy: [Double]) {
    precondition(size >= 2 && dx.count == size * size && dy.count == size * size, "DisplacementGrid: \(dx.count), \(dy.count) values for \(size)x\(size)")
    (self.size, self.dx, self.dy) = (size, dx, dy)
  }
}

/// The concrete choices for one sample. Geometric transforms, in the order they act on the
/// source: flips, `rotations` quarter turns counter-clockwise (as NumPy's rot90), crop-and-zoom,
/// elastic deformation; then, on the image only: contrast, brightness, noise, and a clip to [-1, 1].
public struct AugmentationPlan: Equatable, Sendable {
  public var flipX = false, flipY = false
  /// Quarter turns counter-clockwise, 0..<4.
  public var rotations = 0
  public var crop = CropBox()
  public var elastic: DisplacementGrid?
  /// Added to every image value.
  public var brightness = 0.0
  /// Multiplies each channel's deviations from its tile mean.
  public var contrast = 1.0
  /// Standard deviation of additive Gaussian noise, and the seed of its values.
  public var noiseStd = 0.0
  public var noiseSeed: UInt64 = 0
  public var interpolation = ImageInterpolation.bilinear

  /// The identity: nothing changes.
  public init() {}

  /// Whether the plan moves no pixel.
  public var isGeometricIdentity: Bool {
    !flipX && !flipY && rotations % 4 == 0 && crop == CropBox() && elastic == nil
  }

  /// Whether the plan changes no image value beyond the geometric transforms.
  public var isIntensityIdentity: Bool { brightness == 0 && contrast == 1 && noiseStd == 0 }
}
