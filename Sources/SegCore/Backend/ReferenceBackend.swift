// MARK: - Reference backend

/// Host storage of the reference backend: the values themselves.
final class ReferenceStorage: DeviceStorage {
  let value: HostTensor
  init(_ value: HostTensor) { self.value = value }
}

/// Plain Swift loops computing in Double: slow, always there, the truth every faster backend is
/// tested against. Its kernel for every op is the op's own `reference`.
public final class ReferenceBackend: Backend, @unchecked Sendable {
  /// The one reference backend.
  public static let shared = ReferenceBackend()

  public let name = "reference"

  /// Every reference kernel computes in Double and rounds its output to the output's dtype, f16 and
  /// bf16 included: slow, but the half-precision graph runs here as it does on a GPU.
  public var halfPrecisionConvolutions: Bool { true }

  public func upload(_ host: HostTensor) throws -> any DeviceStorage { ReferenceStorage(host) }

  public func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    try Self.host(storage, type: type)
  }

  /// Every primitive's own `reference`, as the table's only candidate ("reference").
  public let kernels: KernelTable

  private init() {
    var table = KernelTable(backendName: "reference")
    for type in Primitives.all { Self.registerReference(type, in: &table) }
    kernels = table
  }

  private static func registerReference<P: Primitive>(_ type: P.Type, in table: inout KernelTable) {
    table.registerOutputs(type, "reference") { op, inputs, outputs in
      let hosts = try inputs.map { try ReferenceBackend.host($0.storage, type: $0.type) }
      let results = try op.referenceOutputs(hosts, outputs: outputs)
      precondition(results.map(\.type) == outputs, "\(op): reference kernel returned \(results.map(\.type)), shape rule says \(outputs)")
      return results.map { ReferenceStorage($0) }
    }
  }

  private static func host(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    guard let s = storage as? ReferenceStorage else {
      throw TensorError(op: "download", "buffer of type \(type) does not belong to the reference backend")
    }
    return s.value
  }
}
