import Foundation
import SegCore

// MARK: - Options

/// Which augmentations run (`kinds`), how often and how strongly. The defaults are the set a run
/// with augmentation on uses (`AugmentationKind.defaultSet`) at the reference's magnitudes where it
/// has them: flips, crop-and-zoom and brightness, plus 90-degree rotations, contrast, noise and the
/// paper's elastic deformation. Magnitudes of intensity changes are in the scaled [-1, 1] space.
public struct AugmentationOptions: Equatable, Sendable {
  /// The augmentations that run; the others keep their draws (see `draw`) but change nothing.
  public var kinds: Set<AugmentationKind>
  /// Probability of mirroring left-right (the reference: 0.5).
  public var flipXProbability = 0.5
  /// Probability of mirroring top-bottom (the reference: 0.5).
  public var flipYProbability = 0.5
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

  /// The default set at the default magnitudes.
  public init() { kinds = AugmentationKind.defaultSet }

  /// `kinds` at the default magnitudes.
  public init(kinds: Set<AugmentationKind>) { self.kinds = kinds }

  /// All seven augmentations at the default magnitudes (the pipeline benchmark's load).
  public static var all: AugmentationOptions { AugmentationOptions(kinds: Set(AugmentationKind.allCases)) }

  /// Nothing runs: drawing gives the identity plan.
  public static var none: AugmentationOptions { AugmentationOptions(kinds: []) }

  /// Whether no augmentation runs.
  public var isEmpty: Bool { kinds.isEmpty }

  // MARK: Checking

  /// The most control points per side: each sample draws 2 x n x n displacements whether or not
  /// it is deformed, and finer grids than this move single pixels rather than shapes.
  public static let maxElasticGrid = 32
  /// The largest displacement standard deviation in pixels; beyond it the tile only folds over itself.
  public static let maxElasticSigma = 1000.0

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
      throw SettingError(.maxCropFraction, value: maxCropFraction, "must be in [0, 0.5) (the fraction trimmed from each side), so that something is left to zoom into")
    }
    guard (0...2).contains(maxBrightnessDelta) else {
      throw SettingError(.maxBrightnessDelta, value: maxBrightnessDelta, "must be in [0, 2]: images span [-1, 1], and a larger shift clips every value")
    }
    guard contrastRange.lowerBound >= 0, contrastRange.upperBound.isFinite else {
      throw SettingError(.contrastRange, value: "\(contrastRange.lowerBound),\(contrastRange.upperBound)", "the factors must be finite and at least 0")
    }
    guard (0...2).contains(maxNoiseStd) else {
      throw SettingError(.maxNoiseStd, value: maxNoiseStd, "must be in [0, 2]: images span [-1, 1], and more noise than that hides them")
    }
    guard (2...Self.maxElasticGrid).contains(elasticGrid) else {
      throw SettingError(.elasticGrid, value: elasticGrid, "control points per side must be in 2...\(Self.maxElasticGrid) (the paper: 3)")
    }
    guard (0...Self.maxElasticSigma).contains(elasticSigma) else {
      throw SettingError(.elasticSigma, value: elasticSigma, "must be in [0, \(Self.maxElasticSigma)] pixels (the paper: 10)")
    }
  }

  // MARK: Drawing

  /// The random choices for one sample. Every augmentation consumes the same draws whether it is
  /// on or off, in or out of `kinds`, so choosing a subset, or changing one probability or
  /// magnitude, leaves the other choices of a sample as they were (and the default set draws what
  /// every earlier version drew).
  public func draw<R: AugmentationRandom>(_ rng: inout R) -> AugmentationPlan {
    var plan = AugmentationPlan()
    plan.interpolation = interpolation
    func chance(_ p: Double) -> Bool { rng.nextUnit() < p }

    let flipX = chance(flipXProbability), flipY = chance(flipYProbability)
    if kinds.contains(.flip) { (plan.flipX, plan.flipY) = (flipX, flipY) }
    let quarter = Int(rng.next() >> 62)
    if kinds.contains(.rot90) { plan.rotations = quarter }

    let cropOn = chance(cropProbability)
    let trims = (0..<4).map { _ in rng.nextUnit() * maxCropFraction }
    if cropOn, kinds.contains(.zoom) { plan.crop = CropBox(top: trims[0], left: trims[1], bottom: trims[2], right: trims[3]) }

    let brightnessOn = chance(brightnessProbability)
    let delta = (rng.nextUnit() * 2 - 1) * maxBrightnessDelta
    if brightnessOn, kinds.contains(.brightness) { plan.brightness = delta }
    let contrastOn = chance(contrastProbability)
    let factor = contrastRange.lowerBound + rng.nextUnit() * (contrastRange.upperBound - contrastRange.lowerBound)
    if contrastOn, kinds.contains(.contrast) { plan.contrast = factor }
    let noiseOn = chance(noiseProbability)
    let std = rng.nextUnit() * maxNoiseStd
    let noiseSeed = rng.next()
    if noiseOn, kinds.contains(.noise) { (plan.noiseStd, plan.noiseSeed) = (std, noiseSeed) }

    let elasticOn = chance(elasticProbability)
    let n = elasticGrid
    let dx = (0..<n * n).map { _ in rng.nextNormal() * elasticSigma }
    let dy = (0..<n * n).map { _ in rng.nextNormal() * elasticSigma }
    if elasticOn, elasticSigma > 0, kinds.contains(.elastic) { plan.elastic = DisplacementGrid(size: n, dx: dx, dy: dy) }
    return plan
  }
}

// MARK: - Description

extension AugmentationOptions: CustomStringConvertible {
  /// The augmentations that run with their magnitudes, e.g. "flip, zoom (trim up to 0.3 per side)"; "none".
  public var description: String {
    guard !kinds.isEmpty else { return "none" }
    return AugmentationKind.allCases.filter(kinds.contains).map { kind in
      switch kind {
      case .flip, .rot90: return kind.rawValue
      case .zoom: return "zoom (trim up to \(maxCropFraction) per side)"
      case .brightness: return "brightness (+-\(maxBrightnessDelta))"
      case .contrast: return "contrast (x\(contrastRange.lowerBound) to x\(contrastRange.upperBound))"
      case .noise: return "noise (std up to \(maxNoiseStd))"
      case .elastic: return "elastic (sigma \(elasticSigma) px, \(elasticGrid)x\(elasticGrid) grid)"
      }
    }.joined(separator: ", ")
  }
}

// MARK: - Record

/// The options as a checkpoint records them (JSON with snake_case keys; every field, so that a
/// resumed run draws exactly what the first did). Keys missing from a record take the defaults.
extension AugmentationOptions: Codable {
  private enum Key: String, CodingKey {
    case augmentations, interpolation
    case flipXProbability = "flip_x_probability", flipYProbability = "flip_y_probability"
    case cropProbability = "zoom_probability", maxCropFraction = "zoom_range"
    case brightnessProbability = "brightness_probability", maxBrightnessDelta = "brightness_range"
    case contrastProbability = "contrast_probability", contrastRange = "contrast_range"
    case noiseProbability = "noise_probability", maxNoiseStd = "noise_std"
    case elasticProbability = "elastic_probability", elasticGrid = "elastic_grid", elasticSigma = "elastic_sigma"
  }

  /// Reads a record; throws on an unknown augmentation or a field of the wrong type.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: Key.self)
    self.init(kinds: Set(try c.decode([AugmentationKind].self, forKey: .augmentations)))
    func read<T: Decodable>(_ key: Key, _ field: inout T) throws { field = try c.decodeIfPresent(T.self, forKey: key) ?? field }
    try read(.flipXProbability, &flipXProbability)
    try read(.flipYProbability, &flipYProbability)
    try read(.cropProbability, &cropProbability)
    try read(.maxCropFraction, &maxCropFraction)
    try read(.brightnessProbability, &brightnessProbability)
    try read(.maxBrightnessDelta, &maxBrightnessDelta)
    try read(.contrastProbability, &contrastProbability)
    var range = [contrastRange.lowerBound, contrastRange.upperBound]
    try read(.contrastRange, &range)
    guard range.count == 2, range[0] <= range[1] else {
      throw DecodingError.dataCorruptedError(forKey: .contrastRange, in: c, debugDescription: "not two factors, the lower first: \(range)")
    }
    contrastRange = range[0]...range[1]
    try read(.noiseProbability, &noiseProbability)
    try read(.maxNoiseStd, &maxNoiseStd)
    try read(.elasticProbability, &elasticProbability)
    try read(.elasticGrid, &elasticGrid)
    try read(.elasticSigma, &elasticSigma)
    try read(.interpolation, &interpolation)
  }

  /// Writes every field, the augmentations in the canonical order.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: Key.self)
    try c.encode(AugmentationKind.allCases.filter(kinds.contains), forKey: .augmentations)
    try c.encode(flipXProbability, forKey: .flipXProbability)
    try c.encode(flipYProbability, forKey: .flipYProbability)
    try c.encode(cropProbability, forKey: .cropProbability)
    try c.encode(maxCropFraction, forKey: .maxCropFraction)
    try c.encode(brightnessProbability, forKey: .brightnessProbability)
    try c.encode(maxBrightnessDelta, forKey: .maxBrightnessDelta)
    try c.encode(contrastProbability, forKey: .contrastProbability)
    try c.encode([contrastRange.lowerBound, contrastRange.upperBound], forKey: .contrastRange)
    try c.encode(noiseProbability, forKey: .noiseProbability)
    try c.encode(maxNoiseStd, forKey: .maxNoiseStd)
    try c.encode(elasticProbability, forKey: .elasticProbability)
    try c.encode(elasticGrid, forKey: .elasticGrid)
    try c.encode(elasticSigma, forKey: .elasticSigma)
    try c.encode(interpolation, forKey: .interpolation)
  }
}
