import ArgumentParser
import SegCPU
import SegCore

/// `--device` values.
enum DeviceChoice: String, ExpressibleByArgument, CaseIterable {
  case cpu, reference, cuda

  /// The backend, or an error saying what this build offers.
  func backend() throws -> any Backend {
    switch self {
    case .cpu: return CPUBackend.shared
    case .reference: return ReferenceBackend.shared
    case .cuda:
      throw ValidationError("--device cuda: not yet available on this build (the CUDA backend is not built yet); use --device cpu")
    }
  }
}
