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

// MARK: - The augmentations

/// One augmentation, by the name the command line (`--augment flip,zoom`) and the checkpoint use.
/// Geometric ones move the image and its label with one map; photometric ones change image values
/// only. Whatever order a list names them in, they act in one order: flip, rot90, zoom, elastic on
/// both tiles, then contrast, brightness, noise on the image (and a clip to [-1, 1]).
public enum AugmentationKind: String, CaseIterable, Codable, Sendable {
  /// Mirror left-right and top-bottom, each with probability 0.5 (the reference's).
  case flip
  /// Rotate by 0, 90, 180 or 270 degrees, drawn uniformly.
  case rot90
  /// Trim a random fraction from each side and zoom the rest back to the tile (the reference's crop-and-zoom).
  case zoom
  /// Add one random shift to every image value (the reference's).
  case brightness
  /// Scale each channel's deviations from its tile mean by a random factor.
  case contrast
  /// Add Gaussian noise of a random standard deviation to the image.
  case noise
  /// The paper's elastic deformation: random displacements on a coarse grid, smoothly interpolated.
  case elastic

  /// The set that `--augment` alone turns on; the one place that decides it. Flips and quarter
  /// turns (the square's eight symmetries): on real microscopy data (docs/reference.md, "What each
  /// augmentation does on real data") they were level with no augmentation over ten seeds at 300
  /// steps and above it, and above flips alone, at each of three seeds at 3,000, while all seven
  /// together were worse at both schedules, zoom most of all.
  public static let defaultSet: Set<AugmentationKind> = [.flip, .rot90]

  /// Whether it moves pixels (image and label alike) rather than changing image values.
  public var isGeometric: Bool {
    switch self {
    case .flip, .rot90, .zoom, .elastic: return true
    case .brightness, .contrast, .noise: return false
    }
  }

  /// `kinds` in the canonical order (`allCases`), as a list names them: "flip,zoom", "none" when empty.
  public static func list(_ kinds: Set<AugmentationKind>) -> String {
    kinds.isEmpty ? "none" : allCases.filter(kinds.contains).map(\.rawValue).joined(separator: ",")
  }

  /// The set a comma-separated list names: any of the augmentations' names, "default" for the
  /// default set (combinable with others), or "none" alone. Throws `SettingError` (`.augmentations`)
  /// naming an unknown or empty entry and listing the valid names.
  public static func parseList(_ text: String) throws -> Set<AugmentationKind> {
    let names = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    let valid = allCases.map(\.rawValue).joined(separator: ", ")
    if names == ["none"] { return [] }
    var kinds = Set<AugmentationKind>()
    for name in names {
      if name == "default" {
        kinds.formUnion(defaultSet)
      } else if let kind = AugmentationKind(rawValue: name) {
        kinds.insert(kind)
      } else if name == "none" {
        throw SettingError(.augmentations, value: text, "\"none\" cannot be combined with augmentations; give it alone")
      } else {
        let what = name.isEmpty ? "an empty name" : "unknown augmentation \"\(name)\""
        throw SettingError(.augmentations, value: text, "\(what); the augmentations are \(valid) (comma-separated, any subset), or default (\(list(defaultSet))), or none")
      }
    }
    return kinds
  }
}

/// How images are resampled by the geometric transforms (labels always take the nearest pixel).
public enum ImageInterpolation: String, Sendable, CaseIterable, Codable {
  case bilinear, bicubic
}
