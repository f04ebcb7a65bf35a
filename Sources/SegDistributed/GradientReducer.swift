import Foundation
import SegCore

// MARK: - Gradient all-reduce in buckets

/// Averages a training step's gradients over every rank, in buckets that start reducing while the
/// backward pass still runs (as PyTorch DDP's): `ready` is told of each gradient as the walk makes
/// it final, copies it to the host in f32 (fp16 and bf16 gradients are reduced in f32), and once a
/// bucket holds `bucketElements` values hands it to the communication thread (`ReductionThread`),
/// which reduces it while the training thread goes on with the backward pass. Where the library
/// does not let a second thread call MPI, the training thread starts each bucket's MPI_Iallreduce
/// itself and moves the started ones on (MPI_Test) at every later `ready`. `finish` waits for the
/// rest and returns the averages as tensors of the gradients' own types. Gradients on a backend
/// that `device` reduces (CUDA tensors, with NCCL) stay there: they are bucketed on the device and
/// summed by it, and only the losses and the finite flag go through MPI.
public final class GradientReducer {
  /// The ranks reduced over.
  public let communicator: Communicator
  /// Values per bucket (a larger gradient makes a bucket of its own).
  public let bucketElements: Int
  /// Seconds spent blocked at the end of steps waiting for reductions (the part of the
  /// communication the backward pass did not hide), summed over steps.
  public private(set) var waitSeconds = 0.0
  /// Seconds spent inside every MPI call of the reducer (on the communication thread, when there is
  /// one), summed over steps.
  public private(set) var mpiSeconds = 0.0
  /// Whether a communication thread reduces the buckets (false: the training thread, in MPI_Test
  /// calls between backward ops).
  public var overlapped: Bool { thread != nil }
  /// Steps finished.
  public private(set) var steps = 0

  private struct Member {
    let index, offset, count: Int
    let shape: Shape
    let dtype: DType
    let backend: any Backend
  }
  private struct Bucket {
    var members: [Member] = []
    var values: [[Float]] = []
    var count = 0
    var pending: PendingReduction?
  }
  private var open = Bucket()
  private var started: [Bucket] = []
  private var buffers: [UnsafeMutableBufferPointer<Float>] = []
  private var expected = 0, seen = 0
  private let clock = ContinuousClock()
  private let thread: ReductionThread?
  /// How the gradients travel, for the start of a run.
  public var transport: String {
    if device != nil { return "NCCL all-reduce on the GPU (its own stream), MPI for the host's tensors and the losses" }
    return overlapped ? "MPI all-reduce on a communication thread, behind the backward pass"
      : "MPI all-reduce progressed by the training thread (the MPI library allows one thread only)"
  }
  /// The sum on the device, for gradients of the backends it reduces.
  public let device: (any DeviceAllReduce)?
  private var openDevice = DeviceBucket()
  private var startedDevice: [DeviceBucket] = []

  /// A reducer over `communicator` in buckets of `bucketMegabytes` MB of f32 values (UNET_BUCKET_MB
  /// in the command line's runs; 25 as PyTorch DDP), with a communication thread unless
  /// `communicationThread` is false or the library allows MPI calls on one thread only.
  /// Gradients on a backend that `device` reduces are summed by it instead of MPI.
  public init(communicator: Communicator, bucketMegabytes: Double = 25, communicationThread: Bool = true,
              device: (any DeviceAllReduce)? = nil) {
    self.communicator = communicator
    self.device = device
    bucketElements = max(Int(bucketMegabytes * 1_048_576 / 4), 1)
    thread = communicationThread && communicator.threadsMayCall ? ReductionThread(communicator: communicator) : nil
  }

  deinit {
    // A step that failed half-way may have left the thread reducing into the buffers: it frees them
    // when its loop has ended.
    if let thread { thread.stop(freeing: buffers) } else { for b in buffers { b.deallocate() } }
  }

  /// A step with `count` gradients begins.
  public func begin(count: Int) {
    (expected, seen, open, started) = (count, 0, Bucket(), [])
    (openDevice, startedDevice) = (DeviceBucket(), [])
  }

  /// Gradient `index` of the step is final: it joins the open bucket, which starts reducing once full.
  public func ready(_ index: Int, _ gradient: Tensor) throws {
    if let device, Self.sumsOnDevice(gradient.backend, device) {
      try withoutGradients { try openDevice.add(index, gradient) }
      seen += 1
      if openDevice.count >= bucketElements { try startDeviceBucket(device) }
      return
    }
    let values = try gradient.floats()
    open.members.append(Member(index: index, offset: open.count, count: values.count, shape: gradient.shape,
                               dtype: gradient.dtype, backend: gradient.backend))
    open.values.append(values)
    open.count += values.count
    seen += 1
    if open.count >= bucketElements { try startOpenBucket() }
    if thread == nil { try progress() }
  }

  /// Waits for every bucket and returns the step's gradients averaged over the ranks (in the order
  /// `begin` was told of), whether every rank's were finite (checked only when `checkFinite`), and
  /// `losses` averaged over the ranks (so that every rank logs, and decides on, the same values).
  public func finish(checkFinite: Bool, losses: [Double]) throws -> (gradients: [Tensor], finite: Bool, losses: [Double]) {
    guard seen == expected else {
      throw DistributedError.unsupported("the backward pass announced \(seen) of \(expected) gradients")
    }
    if open.count > 0 { try startOpenBucket() }
    if let device, openDevice.count > 0 { try startDeviceBucket(device) }
    let t0 = clock.now
    if let device, !startedDevice.isEmpty { try device.finish() }
    if let thread {
      mpiSeconds += try thread.waitAll()
    } else {
      for i in started.indices { try communicator.wait(&started[i].pending!) }
      mpiSeconds += (clock.now - t0).seconds
    }
    waitSeconds += (clock.now - t0).seconds
    // After the wait: the training thread calls MPI again only once the communication thread is idle.
    if steps == 0 { try checkLayout() }

    // One small all-reduce: the losses and the count of non-finite values the reduction produced.
    var nonFinite = 0.0
    if checkFinite {
      for (k, bucket) in started.enumerated() where buffers[k][0..<bucket.count].contains(where: { !$0.isFinite }) {
        nonFinite += 1
      }
      for bucket in startedDevice { nonFinite += try bucket.nonFinite() }
    }
    var small = losses + [nonFinite]
    let t1 = clock.now
    try communicator.allreduce(&small)
    mpiSeconds += (clock.now - t1).seconds

    let scale = 1 / Float(communicator.size)
    var out = [Tensor?](repeating: nil, count: expected)
    try withoutGradients {
      for (k, bucket) in started.enumerated() {
        let buffer = buffers[k]
        for m in bucket.members {
          let averaged = (0..<m.count).map { buffer[m.offset + $0] * scale }
          let t = try Tensor(shape: m.shape, floats: averaged, on: m.backend)
          out[m.index] = m.dtype == .f32 ? t : try cast(t, to: m.dtype)
        }
      }
      for bucket in startedDevice {
        for (i, g) in try bucket.gradients(scale: scale) { out[i] = g }
      }
    }
    (started, startedDevice) = ([], [])
    steps += 1
    let n = Double(communicator.size)
    return (out.map { $0! }, small.last! == 0, small.dropLast().map { $0 / n })
  }

  // MARK: - Buckets

  /// Whether a gradient of `backend` is summed on the device (when `device` reduces that backend:
  /// CUDA tensors with NCCL) rather than through MPI on the host (the CPU's tensors).
  static func sumsOnDevice(_ backend: any Backend, _ device: (any DeviceAllReduce)?) -> Bool {
    device?.reduces(backend) ?? false
  }

  private func startDeviceBucket(_ device: any DeviceAllReduce) throws {
    try withoutGradients { try openDevice.start(device) }
    startedDevice.append(openDevice)
    openDevice = DeviceBucket()
  }

  private func startOpenBucket() throws {
    let k = started.count
    if k == buffers.count || buffers[k].count < open.count {
      if k < buffers.count { buffers[k].deallocate() } else { buffers.append(UnsafeMutableBufferPointer(start: nil, count: 0)) }
      buffers[k] = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(open.count, bucketElements))
    }
    let buffer = buffers[k]
    for (m, values) in zip(open.members, open.values) {
      let target = UnsafeMutableBufferPointer(rebasing: buffer[m.offset..<(m.offset + m.count)])
      _ = values.withUnsafeBufferPointer { target.update(fromContentsOf: $0) }
    }
    var bucket = open
    bucket.values = []
    if let thread {
      thread.submit(buffer.baseAddress!, count: bucket.count)
    } else {
      let t0 = clock.now
      bucket.pending = try communicator.startAllreduce(buffer.baseAddress!, count: bucket.count)
      mpiSeconds += (clock.now - t0).seconds
    }
    started.append(bucket)
    open = Bucket()
  }

  /// Throws unless every rank put the same gradients at the same places of the same buckets (the
  /// backward pass announces them in one order on every rank; this proves it once).
  private func checkLayout() throws {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for (k, bucket) in started.enumerated() {
      for m in bucket.members {
        for v in [k, m.index, m.offset, m.count] { h = (h ^ UInt64(truncatingIfNeeded: v)) &* 0x0000_0100_0000_01B3 }
      }
    }
    for (k, bucket) in startedDevice.enumerated() {
      for m in bucket.members {
        for v in [-1 - k, m.index, m.count] { h = (h ^ UInt64(truncatingIfNeeded: v)) &* 0x0000_0100_0000_01B3 }
      }
    }
    var extremes = [h, ~h]
    try communicator.allreduce(&extremes, .max)
    guard extremes[0] == h, ~extremes[1] == h else {
      throw DistributedError.replicasDiffer("the ranks' gradients are laid out in different all-reduce buckets")
    }
  }

  /// Lets MPI move the started reductions on (non-blocking MPI progresses only inside MPI calls).
  private func progress() throws {
    let t0 = clock.now
    for i in started.indices where !(started[i].pending!.done) { _ = try communicator.test(&started[i].pending!) }
    mpiSeconds += (clock.now - t0).seconds
  }
}

extension Duration {
  /// The duration in seconds.
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
