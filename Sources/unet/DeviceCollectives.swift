import Foundation
import SegCUDA
import SegCore
import SegDistributed
import SegTrain

// MARK: - NCCL for CUDA tensors

/// NCCL sums the gradients of CUDA tensors (SegCUDA knows nothing of MPI, SegDistributed nothing
/// of CUDA: the command line joins them here).
extension NCCLAllReduce: DeviceAllReduce {}

extension DataParallel {
  /// These settings with NCCL summing `backend`'s gradients when it is a CUDA backend on a GPU
  /// (its unique id broadcast over MPI from rank 0); unchanged for the CPU, whose tensors MPI sums.
  /// UNET_NCCL=0 sends CUDA gradients through MPI on the host instead.
  func withDeviceSums(for backend: any Backend, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DataParallel {
    guard let gpu = backend as? CUDABackend, gpu.device is GPUKernelDevice, environment["UNET_NCCL"] != "0" else { return self }
    var settings = self
    let world = communicator
    settings.device = try NCCLAllReduce(backend: gpu, rank: world.rank, size: world.size) { bytes in
      var shared = bytes
      try world.broadcast(&shared)
      return shared
    }
    return settings
  }
}
