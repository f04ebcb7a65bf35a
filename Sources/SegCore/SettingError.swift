// MARK: - Settings

/// A setting of a run that a caller can give a bad value, named apart from how any command line
/// spells it: the libraries throw `SettingError` naming one of these, and the command line maps
/// each to its own flag. The raw value is the name the libraries print without a command line.
public enum Setting: String, CaseIterable, Sendable {
  // The data set and how training tiles are made.
  case fold, folds, workers, batches, prefetch, rank
  // The model's shape.
  case inputChannels, classes, baseFilters, depth, upconvKernel, dropout, inputSize
  // Training.
  case batchSize, warmupSteps, maxSteps, precision, learningRate, weightDecay
  case weightInitializer, learningRateWarmupSteps, headBias, dumpSteps
  // Checkpoints, evaluation and prediction.
  case modelDirectory, resume, keepCheckpoints, overlap, evaluationOutput, predictionInputs, predictionOutput, overwrite
  // The augmentations that run, and the fields of the augmentation options.
  case augmentations
  case flipXProbability, flipYProbability, cropProbability, brightnessProbability, contrastProbability
  case noiseProbability, elasticProbability, maxCropFraction, maxBrightnessDelta, contrastRange, maxNoiseStd
  case elasticGrid, elasticSigma
}

// MARK: - Text that names settings

/// A sentence that may name settings (e.g. "pass \(Setting.resume) to continue it"), kept as parts
/// so that each reader can print the settings in its own words: a command line as its flags.
public struct SettingText: ExpressibleByStringInterpolation, Equatable, Sendable {
  /// Plain text, or a setting to be named.
  public enum Part: Equatable, Sendable {
    case text(String)
    case setting(Setting)
  }

  /// The parts in reading order.
  public private(set) var parts: [Part]

  /// Text that names no setting.
  public init(_ text: String) { parts = [.text(text)] }

  /// A literal without interpolations.
  public init(stringLiteral value: String) { self.init(value) }

  /// A literal whose `Setting` interpolations stay settings and whose other values become text.
  public init(stringInterpolation: Interpolation) { parts = stringInterpolation.parts }

  /// Builds the parts of an interpolated literal.
  public struct Interpolation: StringInterpolationProtocol {
    var parts: [Part] = []
    /// An empty text; the literal fills it.
    public init(literalCapacity: Int, interpolationCount: Int) {}
    /// Literal text.
    public mutating func appendLiteral(_ literal: String) { appendText(literal) }
    /// A setting, named by whoever prints the text.
    public mutating func appendInterpolation(_ setting: Setting) { parts.append(.setting(setting)) }
    /// Any other value, as `String(describing:)` prints it.
    public mutating func appendInterpolation<T>(_ value: T) { appendText(String(describing: value)) }

    private mutating func appendText(_ text: String) {
      guard !text.isEmpty else { return }
      if case .text(let last)? = parts.last {
        parts[parts.count - 1] = .text(last + text)
      } else {
        parts.append(.text(text))
      }
    }
  }

  /// The settings the text names, in order.
  public var settings: [Setting] {
    parts.compactMap { if case .setting(let s) = $0 { return s } else { return nil } }
  }

  /// The text with each setting printed by `name`.
  public func rendered(naming name: (Setting) -> String) -> String {
    parts.map { part in
      switch part {
      case .text(let text): return text
      case .setting(let setting): return name(setting)
      }
    }.joined()
  }
}

// MARK: - Errors

/// A setting with a value that cannot work: which setting, the value as given (when there is
/// one) and why, with what to do instead, e.g. fold 5: "out of range; with 5 folds it must be 0...4".
public struct SettingError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The setting whose value is wrong.
  public let setting: Setting
  /// The value given, as text; nil when the setting was missing or its value is beside the point.
  public let value: String?
  /// What is wrong and what would work; it may name other settings.
  public let reason: SettingText

  /// An error about `setting`'s `value` (any value, printed as `String(describing:)`).
  public init(_ setting: Setting, value: (any Sendable)? = nil, _ reason: SettingText) {
    self.setting = setting
    self.value = value.map { String(describing: $0) }
    self.reason = reason
  }

  /// "name value: reason", with every setting printed by `name`, e.g. a command line's
  /// "--fold 5: out of range; with 5 folds it must be 0...4".
  public func description(naming name: (Setting) -> String) -> String {
    name(setting) + (value.map { " " + $0 } ?? "") + ": " + reason.rendered(naming: name)
  }

  /// The message with the libraries' names of the settings (`Setting.rawValue`).
  public var description: String { description(naming: \.rawValue) }
}
