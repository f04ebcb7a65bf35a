import Foundation

// MARK: - Errors

/// A setting with a value that cannot work: names the option (a flag such as `--fold`, or a
/// field) and what would be valid; "option: reason".
public struct OptionError: Error, CustomStringConvertible, Sendable {
  /// The flag or field the error is about.
  public let option: String
  /// What is wrong, and what would be valid.
  public let reason: String

  /// An error about `option`.
  public init(option: String, _ reason: String) {
    self.option = option
    self.reason = reason
  }

  /// "option: reason".
  public var description: String { "\(option): \(reason)" }
}

/// An error reading or writing a data file: names the file and what is wrong with it, e.g.
/// "data/train-labels.tif: page 3: label value 128 at x 10, y 4; labels must be 0 or 255".
public struct DataError: Error, CustomStringConvertible, LocalizedError, Sendable {
  /// The file or directory the error is about.
  public let path: String
  /// What is wrong, and what was expected.
  public let reason: String

  /// An error about the file at `path`.
  public init(path: String, _ reason: String) {
    self.path = path
    self.reason = reason
  }

  /// "path: reason".
  public var description: String { "\(path): \(reason)" }

  /// The same as `description`, so that Foundation's reporting shows the file and the reason.
  public var errorDescription: String? { description }
}
