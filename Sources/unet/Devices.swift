import ArgumentParser
import Foundation
import SegCPU
import SegCUDA
import SegCore
import SegNN

/// `--device` values: cpu, reference, cuda or cuda:N.
struct DeviceChoice: ExpressibleByArgument, CustomStringConvertible {
  enum Kind: Equatable { case cpu, reference, cuda(Int) }
  let kind: Kind

  init?(argument: String) {
    switch argument {
    case "cpu": kind = .cpu
    case "reference": kind = .reference
    case "cuda": kind = .cuda(0)
    default:
      guard argument.hasPrefix("cuda:"), let n = Int(argument.dropFirst(5)), n >= 0 else { return nil }
      kind = .cuda(n)
    }
  }

  init(_ kind: Kind) { self.kind = kind }

  /// The device of a data-parallel rank: GPU N + its rank on the node (each rank its own GPU);
  /// the CPU and the reference are shared.
  func onLocalRank(_ localRank: Int) -> DeviceChoice {
    guard case .cuda(let n) = kind else { return self }
    return DeviceChoice(.cuda(n + localRank))
  }

  var description: String {
    switch kind {
    case .cpu: return "cpu"
    case .reference: return "reference"
    case .cuda(let n): return n == 0 ? "cuda" : "cuda:\(n)"
    }
  }

  /// The CPU backend configured once from the environment (UNET_CPU_BUFFER_POOL_MB,
  /// UNET_CPU_CONV_ALGORITHM) and --conv-algorithm, which wins over the variable; or why not.
  private static let cpuConfigured = Result<Void, Error> {
    var options = try CPUBackendOptions(environment: ProcessInfo.processInfo.environment)
    if let algorithm = convAlgorithmFlag { options.convAlgorithm = algorithm }
    CPUBackend.shared.configure(options)
  }

  /// --conv-algorithm as parsed (`DeviceOptions.validate`), applied when the CPU backend is configured.
  nonisolated(unsafe) static var convAlgorithmFlag: ConvAlgorithm?

  static var allValueStrings: [String] { ["cpu", "reference", "cuda", "cuda:N"] }

  /// The backend, or an error that says what is missing (`unet doctor` says more). `precision`
  /// tf32 lets the GPU's f32 convolutions use TF32 Tensor Cores; every other precision keeps them
  /// IEEE f32 (half-precision work is cast by the model, not chosen here).
  func backend(precision: Precision = .fp32) throws -> any Backend {
    switch kind {
    case .cpu:
      try Self.cpuConfigured.get()
      return CPUBackend.shared
    case .reference: return ReferenceBackend.shared
    case .cuda(let n):
      do {
        let options = try CUDAOptions(environment: ProcessInfo.processInfo.environment)
        return try CUDABackend.gpu(ordinal: n, tensorFloat32: precision.allowsTF32, options: options)
      } catch {
        throw ValidationError("--device \(description): \(error); run `unet doctor` for what was found")
      }
    }
  }
}
