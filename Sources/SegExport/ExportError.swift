// MARK: - Errors

/// Why a model cannot be exported; nothing is written when one is thrown.
public struct ExportError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The sentence printed to the user: what is wrong and what to do.
  public let description: String

  /// An error that says `description`.
  public init(_ description: String) { self.description = description }
}
