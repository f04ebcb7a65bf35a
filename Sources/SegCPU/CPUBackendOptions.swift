// MARK: - Options

/// Settings of the CPU backend that a program chooses, read once from its environment and applied
/// with `CPUBackend.configure(_:)`: the backend itself reads no environment.
public struct CPUBackendOptions: Equatable, Sendable {
  /// The variable giving `recycledBufferLimit` in MiB.
  public static let bufferPoolVariable = "UNET_CPU_BUFFER_POOL_MB"

  /// Bytes of freed large buffers kept for reuse (`CPUBackend.recycledBufferLimit`); 0 keeps none.
  public var recycledBufferLimit: Int

  /// Options with a buffer pool of `recycledBufferLimit` bytes (default 1 GiB).
  public init(recycledBufferLimit: Int = 1 << 30) {
    self.recycledBufferLimit = recycledBufferLimit
  }

  /// The defaults overridden by `environment`: UNET_CPU_BUFFER_POOL_MB, a whole number of MiB (0 or
  /// more) of freed buffers to keep; unset or empty keeps the default. Any other value is an
  /// error naming the variable and what it expects.
  public init(environment: [String: String]) throws {
    self.init()
    if let text = environment[Self.bufferPoolVariable], !text.isEmpty {
      guard let mb = Int(text), mb >= 0, mb <= Int.max >> 20 else {
        throw CPUBackendOptionsError(
          "\(Self.bufferPoolVariable)=\(text): expected a whole number of MiB, 0 or more "
            + "(0 keeps no freed buffers; the default is \(CPUBackendOptions().recycledBufferLimit >> 20))")
      }
      recycledBufferLimit = mb << 20
    }
  }
}

/// A CPU backend setting in the environment that cannot be used: names the variable and what it
/// expects.
public struct CPUBackendOptionsError: Error, CustomStringConvertible, Sendable {
  /// The variable, its value, and what it expects.
  public let description: String
  init(_ description: String) { self.description = description }
}
