import Foundation
import Testing

import SegCore
@testable import SegDistributed

// MARK: - A fake device sum

/// Stands for NCCL on one rank (a sum over one rank is the identity): records the buckets it is
/// given and whether the backend was told to wait for them.
final class FakeDeviceSum: DeviceAllReduce {
  let backend: any Backend
  var buckets: [[Float]] = []
  var finished = 0
  init(_ backend: any Backend) { self.backend = backend }
  func reduces(_ backend: any Backend) -> Bool { backend === self.backend }
  func start(_ bucket: Tensor) throws {
    #expect(bucket.dtype == .f32 && bucket.shape.rank == 1)
    buckets.append(try bucket.floats())
  }
  func finish() throws { finished += 1 }
}

/// A second backend (standing for a GPU's) with the reference's kernels and buffers.
final class StandInBackend: Backend, @unchecked Sendable {
  let name = "stand-in"
  func upload(_ host: HostTensor) throws -> any DeviceStorage { try ReferenceBackend.shared.upload(host) }
  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    try ReferenceBackend.shared.download(storage, type: type)
  }
  var kernels: KernelTable { ReferenceBackend.shared.kernels }
}

// MARK: - Tests

@Suite struct DeviceAllReduceTests {
  /// Gradients of the backend the device sums go to it; those of any other backend go through MPI.
  @Test func theDeviceTakesOnlyItsOwnBackendsTensors() {
    let gpuLike = StandInBackend(), host = ReferenceBackend.shared
    let device = FakeDeviceSum(gpuLike)
    #expect(GradientReducer.sumsOnDevice(gpuLike, device))
    #expect(!GradientReducer.sumsOnDevice(host, device))
    #expect(!GradientReducer.sumsOnDevice(gpuLike, nil))
  }

  /// A bucket holds its gradients flattened in f32 one after another (a bf16 one widened), and
  /// comes back as gradients of their own shapes and types, scaled by 1 / ranks.
  @Test func aBucketRoundTripsItsGradients() throws {
    let backend = StandInBackend()
    let a = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6], on: backend)
    let b = try cast(Tensor(shape: [2], floats: [0.5, -8], on: backend), to: .bf16)
    let device = FakeDeviceSum(backend)
    var bucket = DeviceBucket()
    try withoutGradients {
      try bucket.add(7, a)
      try bucket.add(3, b)
      try bucket.start(device)
    }
    #expect(device.buckets == [[1, 2, 3, 4, 5, 6, 0.5, -8]])
    let out = try withoutGradients { try bucket.gradients(scale: 0.5) }
    #expect(out.map(\.0) == [7, 3])
    #expect(out[0].1.shape == [2, 3] && out[0].1.dtype == .f32 && out[1].1.dtype == .bf16 && out[1].1.shape == [2])
    #expect(try out[0].1.floats() == [0.5, 1, 1.5, 2, 2.5, 3])
    #expect(try out[1].1.floats() == [0.25, -4])
    #expect(try bucket.nonFinite() == 0)
  }

  /// A NaN in a bucket's sum is seen, so that the loss scaler skips the step on every rank.
  @Test func aNonFiniteSumIsSeen() throws {
    let backend = StandInBackend()
    var bucket = DeviceBucket()
    try withoutGradients {
      try bucket.add(0, Tensor(shape: [3], floats: [1, .nan, 2], on: backend))
      try bucket.start(FakeDeviceSum(backend))
    }
    #expect(try bucket.nonFinite() == 1)
  }
}
