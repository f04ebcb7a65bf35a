// MARK: - Errors

/// An error raised by an op or a backend: names the op, the operand types and what to do.
public struct TensorError: Error, CustomStringConvertible, Sendable {
  public let op: String
  public let message: String

  public init(op: String, _ message: String) {
    self.op = op
    self.message = message
  }

  /// An error about the given operands, e.g. "add: f32[2,3], f32[4]: shapes do not broadcast".
  public init(op: String, operands: [TensorType], _ message: String) {
    self.op = op
    self.message = operands.map(\.description).joined(separator: ", ") + ": " + message
  }

  public var description: String { "\(op): \(message)" }
}
