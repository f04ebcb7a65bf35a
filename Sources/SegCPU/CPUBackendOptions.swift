// MARK: - Options

/// Settings of the CPU backend that a program chooses, read once from its environment and applied
/// with `CPUBackend.configure(_:)`: the backend itself reads no environment.
public struct CPUBackendOptions: Equatable, Sendable {
  /// The variable giving `recycledBufferLimit` in MiB.
  public static let bufferPoolVariable = "UNET_CPU_BUFFER_POOL_MB"

  /// Bytes of freed large buffers kept for reuse (`CPUBackend.recycledBufferLimit`); 0 keeps none.
  public var recycledBufferLimit: Int

  /// The variable giving `convAlgorithm`: auto, direct or winograd.
  public static let convAlgorithmVariable = "UNET_CPU_CONV_ALGORITHM"

  /// How 3x3 stride-1 convolutions are computed (default auto: Winograd where it measured faster).
  public var convAlgorithm: ConvAlgorithm

  /// Options with a buffer pool of `recycledBufferLimit` bytes (default 1 GiB) and `convAlgorithm`.
  public init(recycledBufferLimit: Int = 1 << 30, convAlgorithm: ConvAlgorithm = .auto) {
    self.recycledBufferLimit = recycledBufferLimit
    self.convAlgorithm = convAlgorithm
  }

  /// The defaults overridden by `environment`: UNET_CPU_BUFFER_POOL_MB, a whole number of MiB (0 or
  /// more) of freed buffers to keep, and UNET_CPU_CONV_ALGORITHM; unset or empty keeps the default. Any other value is an
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
    if let text = environment[Self.convAlgorithmVariable], !text.isEmpty {
      guard let algorithm = ConvAlgorithm(rawValue: text) else {
        throw CPUBackendOptionsError(
          "\(Self.convAlgorithmVariable)=\(text): expected one of "
            + ConvAlgorithm.allCases.map(\.rawValue).joined(separator: ", ") + " (the default is auto)")
      }
      convAlgorithm = algorithm
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
