import SegCore

// MARK: - One candidate at a time

/// A backend's (primitive type, candidate) pairs: every kernel its table can run.
public struct KernelCandidate: CustomStringConvertible, Sendable {
  public let type: any Primitive.Type
  public let name: String
  /// "Conv2D/onednn".
  public var description: String { "\(type)/\(name)" }

  /// Every candidate of `backend`'s table, by type name then in the order they are tried.
  public static func all(of backend: any Backend) -> [KernelCandidate] {
    backend.kernels.registered
      .sorted { "\($0.type)" < "\($1.type)" }
      .flatMap { entry in entry.candidates.map { KernelCandidate(type: entry.type, name: $0) } }
  }
}

/// `base` with ops of one primitive type run by one of its candidates only, counting how often
/// that candidate ran and declined, so that a conformance test checks this candidate and knows
/// whether it was exercised. Every other type runs as on `base`.
public final class CandidateBackend: Backend, @unchecked Sendable {
  public let base: any Backend
  public let candidate: KernelCandidate
  public private(set) var kernels: KernelTable
  /// How many ops the candidate computed, and how many it declined (which then failed).
  public private(set) var accepted = 0, declined = 0
  private let lock = Lock()

  public init(_ base: any Backend, forcing candidate: KernelCandidate) {
    (self.base, self.candidate) = (base, candidate)
    kernels = base.kernels
    kernels.backendName = "\(base.name) [\(candidate)]"
    force(candidate.type)
  }

  private func force<P: Primitive>(_ type: P.Type) {
    kernels.registerOutputs(type, "forced", first: true) { [unowned self] op, inputs, outputs in
      let result = try self.base.kernels.run(candidate: self.candidate.name, op, inputs, outputs: outputs)
      self.lock.withLock { if result == nil { self.declined += 1 } else { self.accepted += 1 } }
      guard let result else {
        throw TensorError(op: op.kind.rawValue, operands: inputs.map(\.type), "\(self.candidate) declined these operands")
      }
      return result
    }
  }

  public var name: String { kernels.backendName }
  public func upload(_ host: HostTensor) throws -> any DeviceStorage { try base.upload(host) }
  public func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor { try base.download(storage, type: type) }
  public var deviceDescription: String { base.deviceDescription }
  public func synchronize() throws { try base.synchronize() }
  public var halfPrecisionConvolutions: Bool { base.halfPrecisionConvolutions }
  public var bf16Convolutions: Bool { base.bf16Convolutions }
  public var bf16Unavailability: String? { base.bf16Unavailability }
  public var tf32Convolutions: Bool { base.tf32Convolutions }
}
