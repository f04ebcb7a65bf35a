import ArgumentParser
import Foundation
import SegCore
import SegData
import SegTrain

// MARK: - Augmentation

/// Which augmentations training tiles get and how strongly (train, benchmark pipeline): a list
/// (`--augment flip,zoom`; alone, the default set) and one flag per magnitude. The defaults shown
/// are `AugmentationOptions()`'s, the default set `AugmentationKind.defaultSet`.
struct AugmentationFlags: ParsableArguments {
  private static let defaults = AugmentationOptions()

  @Option(
    name: .customLong("augment"), defaultAsFlag: "default", parsing: .next,
    help: ArgumentHelp(
      "Augment training tiles: a comma-separated list of \(AugmentationKind.allCases.map(\.rawValue).joined(separator: ", ")); alone, the default set (\(AugmentationKind.list(AugmentationKind.defaultSet))); none: off.",
      valueName: "list"))
  var augment: String?

  @Option(
    name: [.customLong("zoom-range"), .customLong("zoom_range")], parsing: .unconditional,
    help: ArgumentHelp("zoom: the largest fraction trimmed from each side before zooming back, in [0, 0.5) (default \(defaults.maxCropFraction): up to \(Self.magnification(defaults.maxCropFraction))x).", valueName: "fraction"))
  var zoomRange: Double?
  @Option(
    name: [.customLong("brightness-range"), .customLong("brightness_range")], parsing: .unconditional,
    help: ArgumentHelp("brightness: the shift is drawn in +-this, images spanning [-1, 1] (default \(defaults.maxBrightnessDelta)).", valueName: "delta"))
  var brightnessRange: Double?
  @Option(
    name: [.customLong("contrast-range"), .customLong("contrast_range")], parsing: .unconditional,
    help: ArgumentHelp("contrast: the factor on deviations from the tile's mean is drawn in [low, high] (default \(defaults.contrastRange.lowerBound),\(defaults.contrastRange.upperBound)).", valueName: "low,high"))
  var contrastRange: String?
  @Option(
    name: [.customLong("noise-std"), .customLong("noise_std")], parsing: .unconditional,
    help: ArgumentHelp("noise: the largest standard deviation of the Gaussian noise, drawn per tile in [0, this] (default \(defaults.maxNoiseStd)).", valueName: "std"))
  var noiseStd: Double?
  @Option(
    name: [.customLong("elastic-sigma"), .customLong("elastic_sigma")], parsing: .unconditional,
    help: ArgumentHelp("elastic: the standard deviation in pixels of each control point's displacement (default \(defaults.elasticSigma), the paper's).", valueName: "pixels"))
  var elasticSigma: Double?
  @Option(
    name: [.customLong("elastic-grid"), .customLong("elastic_grid")], parsing: .unconditional,
    help: ArgumentHelp("elastic: control points per side of the displacement grid (default \(defaults.elasticGrid), the paper's).", valueName: "n"))
  var elasticGrid: Int?

  /// The zoom-in of the smallest crop: 1 / (1 - 2 x fraction).
  static func magnification(_ fraction: Double) -> String { String(format: "%.3g", 1 / (1 - 2 * fraction)) }

  /// Whether any of these flags was given (then a resumed checkpoint's augmentation must match).
  var given: Bool {
    augment != nil || zoomRange != nil || brightnessRange != nil || contrastRange != nil || noiseStd != nil
      || elasticSigma != nil || elasticGrid != nil
  }

  /// The flags' syntax and ranges, before any work.
  func validate() throws {
    do { _ = try options(list: augment ?? "default") } catch let e as SettingError {
      throw ValidationError(e.commandLineDescription)
    }
  }

  /// The options asked for; without --augment, `absent` (train: none; the pipeline benchmark: the
  /// default set). A magnitude of an augmentation that does not run is refused, so that a
  /// misspelt list is not silently a run without it. Throws `SettingError` naming the flag.
  func options(absent: String = "none") throws -> AugmentationOptions {
    let o = try options(list: augment ?? absent)
    let magnitudes: [(AugmentationKind, Setting, Bool)] = [
      (.zoom, .maxCropFraction, zoomRange != nil), (.brightness, .maxBrightnessDelta, brightnessRange != nil),
      (.contrast, .contrastRange, contrastRange != nil), (.noise, .maxNoiseStd, noiseStd != nil),
      (.elastic, .elasticSigma, elasticSigma != nil), (.elastic, .elasticGrid, elasticGrid != nil),
    ]
    for (kind, setting, isGiven) in magnitudes where isGiven && !o.kinds.contains(kind) {
      throw SettingError(setting, "sets \(kind.rawValue), which does not run (\(Setting.augmentations) \(AugmentationKind.list(o.kinds))); add \(kind.rawValue) to the list, or drop the flag")
    }
    return o
  }

  private func options(list: String) throws -> AugmentationOptions {
    var o = AugmentationOptions(kinds: try AugmentationKind.parseList(list))
    if let zoomRange { o.maxCropFraction = zoomRange }
    if let brightnessRange { o.maxBrightnessDelta = brightnessRange }
    if let contrastRange { o.contrastRange = try Self.factors(contrastRange) }
    if let noiseStd { o.maxNoiseStd = noiseStd }
    if let elasticSigma { o.elasticSigma = elasticSigma }
    if let elasticGrid { o.elasticGrid = elasticGrid }
    try o.validate()
    return o
  }

  /// "low,high": two finite factors, the lower first.
  static func factors(_ text: String) throws -> ClosedRange<Double> {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 2, let low = parts[0], let high = parts[1], low.isFinite, high.isFinite, low <= high else {
      throw SettingError(.contrastRange, value: text, "give two factors low,high with low <= high, e.g. 0.75,1.25")
    }
    return low...high
  }

  /// Puts the augmentation of a training run into `s`.
  func apply(to s: inout RunSettings) throws {
    s.augmentation = try options()
    s.augmentationGiven = given
  }
}
