import Foundation
import SegCore

// MARK: - Gradient all-reduce in buckets

/// Averages a training step's gradients over every rank, in buckets that start reducing while the
/// backward pass still runs (as PyTorch DDP's): `ready` is told of each gradient as the walk makes
/// it final, copies it to the host in f32 (fp16 and bf16 gradients are reduced in f32), and once a
/// bucket holds `bucketElements` values starts its MPI_Iallreduce; every later `ready` lets MPI
/// progress the started ones (MPI_Test), so the reduction runs behind the remaining backward work.
/// `finish` waits for the rest and returns the averages as tensors of the gradients' own types.
public final class GradientReducer {
  /// The ranks reduced over.
  public let communicator: Communicator
  /// Values per bucket (a larger gradient makes a bucket of its own).
  public let bucketElements: Int
  /// Seconds spent blocked at the end of steps waiting for reductions (the part of the
  /// communication the backward pass did not hide), summed over steps.
  public private(set) var waitSeconds = 0.0
  /// Seconds spent inside every MPI call of the reducer, summed over steps.
  public private(set) var mpiSeconds = 0.0
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

  /// A reducer over `communicator` in buckets of `bucketMegabytes` MB of f32 values (UNET_BUCKET_MB
  /// in the command line's runs; 25 as PyTorch DDP).
  public init(communicator: Communicator, bucketMegabytes: Double = 25) {
    self.communicator = communicator
    bucketElements = max(Int(bucketMegabytes * 1_048_576 / 4), 1)
  }

  deinit { for b in buffers { b.deallocate() } }

  /// A step with `count` gradients begins.
  public func begin(count: Int) {
    (expected, seen, open, started) = (count, 0, Bucket(), [])
  }

  /// Gradient `index` of the step is final: it joins the open bucket, which starts reducing once full.
  public func ready(_ index: Int, _ gradient: Tensor) throws {
    let values = try gradient.floats()
    open.members.append(Member(index: index, offset: open.count, count: values.count, shape: gradient.shape,
                               dtype: gradient.dtype, backend: gradient.backend))
    open.values.append(values)
    open.count += values.count
    seen += 1
    if open.count >= bucketElements { try startOpenBucket() }
    try progress()
  }

  /// Waits for every bucket and returns the step's gradients averaged over the ranks (in the order
  /// `begin` was told of), whether every rank's were finite (checked only when `checkFinite`), and
  /// `losses` averaged over the ranks (so that every rank logs, and decides on, the same values).
  public func finish(checkFinite: Bool, losses: [Double]) throws -> (gradients: [Tensor], finite: Bool, losses: [Double]) {
    guard seen == expected else {
      throw DistributedError.unsupported("the backward pass announced \(seen) of \(expected) gradients")
    }
    if open.count > 0 { try startOpenBucket() }
    if steps == 0 { try checkLayout() }
    let t0 = clock.now
    for i in started.indices { try communicator.wait(&started[i].pending!) }
    let waited = (clock.now - t0).seconds
    waitSeconds += waited
    mpiSeconds += waited

    // One small all-reduce: the losses and the count of non-finite values the reduction produced.
    var nonFinite = 0.0
    if checkFinite {
      for (k, bucket) in started.enumerated() where buffers[k][0..<bucket.count].contains(where: { !$0.isFinite }) {
        nonFinite += 1
      }
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
    }
    started = []
    steps += 1
    let n = Double(communicator.size)
    return (out.map { $0! }, small.last! == 0, small.dropLast().map { $0 / n })
  }

  // MARK: - Buckets

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
    let t0 = clock.now
    bucket.pending = try communicator.startAllreduce(buffer.baseAddress!, count: bucket.count)
    mpiSeconds += (clock.now - t0).seconds
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
