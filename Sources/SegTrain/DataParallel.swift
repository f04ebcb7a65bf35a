import Foundation
import SegCore
import SegData
import SegDistributed
import SegNN

// MARK: - Identical replicas

/// What keeps the ranks of a data-parallel run training one model: rank 0's weights, Adam state
/// and loss scale broadcast to every rank before the first step, and a checksum of the weights'
/// bits compared across ranks.
public enum Replicas {
  /// Makes every rank's model, optimizer and loss scale rank 0's; returns the loss scale.
  public static func broadcast(
    _ model: UNet, _ optimizer: Adam, lossScale: LossScaler.State?, over communicator: Communicator
  ) throws -> LossScaler.State? {
    let params = model.parameters
    for p in params { p.value = try broadcast(p.value, communicator) }
    // Adam's step and whether it has moments, and the loss scale: rank 0's decide.
    var header = [Double(optimizer.step), optimizer.moments.isEmpty ? 0 : 1, lossScale == nil ? 0 : 1,
                  lossScale?.scale ?? 0, Double(lossScale?.goodSteps ?? 0), Double(lossScale?.skippedSteps ?? 0)]
    try communicator.broadcast(&header)
    var moments: [String: (m: Tensor, v: Tensor)] = [:]
    if header[1] != 0 {
      for p in params {
        let zero = try Tensor(repeating: 0, shape: p.value.shape, dtype: p.value.dtype, on: p.value.backend)
        let own = optimizer.moments[p.name] ?? (zero, zero)
        moments[p.name] = (try broadcast(own.m, communicator), try broadcast(own.v, communicator))
      }
    }
    optimizer.restore(step: Int(header[0]), moments: moments)
    guard header[2] != 0 else { return nil }
    return LossScaler.State(scale: header[3], goodSteps: Int(header[4]), skippedSteps: Int(header[5]))
  }

  /// Rank 0's `tensor` on every rank, on each rank's own backend.
  static func broadcast(_ tensor: Tensor, _ communicator: Communicator) throws -> Tensor {
    var values = try tensor.floats()
    try communicator.broadcast(&values)
    return try withoutGradients {
      let t = try Tensor(shape: tensor.shape, floats: values, on: tensor.backend)
      return tensor.dtype == .f32 ? t : try cast(t, to: tensor.dtype)
    }
  }

  /// FNV-1a over the bits of every weight, in the model's parameter order.
  public static func checksum(_ model: UNet) throws -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for p in model.parameters {
      for v in try p.value.floats() {
        h = (h ^ UInt64(v.bitPattern)) &* 0x0000_0100_0000_01B3
      }
    }
    return h
  }

  /// Throws, naming `when`, unless every rank's weights have the same checksum; returns it.
  @discardableResult
  public static func verify(_ model: UNet, over communicator: Communicator, when: String) throws -> UInt64 {
    let h = try checksum(model)
    // The largest checksum and the largest complement: equal to our own only when all agree.
    var extremes = [h, ~h]
    try communicator.allreduce(&extremes, .max)
    guard extremes[0] == h, ~extremes[1] == h else {
      throw DistributedError.replicasDiffer(
        "the weights' checksums differ \(when) (\(communicator.name): \(String(h, radix: 16)); largest "
          + "\(String(extremes[0], radix: 16)), smallest \(String(~extremes[1], radix: 16)))")
    }
    return h
  }
}

// MARK: - Checking replicas during training

/// Compares the weights' checksums across ranks every `every` updates (UNET_REPLICA_CHECK_EVERY),
/// stopping the run when they differ; rank 0 says each agreement.
public final class ReplicaCheck: TrainingCallback {
  /// Updates between checks.
  public let every: Int
  private let communicator: Communicator
  private let say: (String) -> Void

  /// A check every `every` updates over `communicator`, reported through `say`.
  public init(every: Int, communicator: Communicator, say: @escaping (String) -> Void) {
    (self.every, self.communicator, self.say) = (every, communicator, say)
  }

  public func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool { every > 0 && step % every == 0 }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard every > 0, event.step % every == 0 else { return }
    let h = try Replicas.verify(loop.model, over: communicator, when: "after step \(event.step)")
    say("unet: weights identical on \(communicator.size) ranks after step \(event.step) (checksum \(String(h, radix: 16)))")
  }
}

// MARK: - Sharded evaluation

/// Evaluates `model` on `slices` split between the ranks (rank r scores images r, r + size, ...),
/// then adds every rank's sums up, so that each rank holds the report of all images, named and
/// ordered as a single process names them ("image i").
public func evaluate(
  _ model: UNet, on slices: [LabelledSlice], batchSize: Int, window: SlidingWindow, over communicator: Communicator
) throws -> EvaluationReport {
  let predictor = try TiledPredictor(model: model, batchSize: batchSize, window: window)
  let k = predictor.classes, width = 3 + k * k
  var sums = [Double](repeating: 0, count: slices.count * width)
  for i in stride(from: communicator.rank, to: slices.count, by: communicator.size) {
    var one = try EvaluationAccumulator(classes: k)
    try one.add(name: "image \(i)", prediction: predictor.predict(slices[i].imageFile), truth: slices[i].label.map(Int32.init))
    sums.replaceSubrange((i * width)..<((i + 1) * width), with: one.imageSums)
  }
  try communicator.allreduce(&sums)
  var all = try EvaluationAccumulator(classes: k)
  for i in slices.indices { try all.add(name: "image \(i)", sums: Array(sums[(i * width)..<((i + 1) * width)])) }
  return all.report
}

// MARK: - Settings

/// A data-parallel run's communicator and settings, read once from the environment:
/// UNET_BUCKET_MB (MB of gradients per all-reduce bucket, default 25), UNET_COMM_THREAD (1: the
/// default, a communication thread; 0: none) and UNET_REPLICA_CHECK_EVERY (updates between weight
/// checksum comparisons; default 0: only once, after the broadcast).
public struct DataParallel {
  /// The ranks.
  public let communicator: Communicator
  /// MB of f32 gradients per bucket.
  public var bucketMegabytes = 25.0
  /// Updates between checksum comparisons of every rank's weights (0: none during training).
  public var checkEvery = 0
  /// The sum on the device for the gradients of its backend (NCCL for CUDA tensors), set by the
  /// caller that made the backend; nil sums every gradient through MPI on the host.
  public var device: (any DeviceAllReduce)?
  /// Whether a communication thread reduces the host's buckets (UNET_COMM_THREAD=0 turns it off:
  /// the training thread then moves them on between backward ops, for comparison).
  public var communicationThread = true

  /// A gradient reducer of these settings.
  public func reducer() -> GradientReducer {
    GradientReducer(communicator: communicator, bucketMegabytes: bucketMegabytes, communicationThread: communicationThread, device: device)
  }

  /// The settings for `communicator` from `environment`; a value that is not a number is an error
  /// naming its variable.
  public init(communicator: Communicator, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
    self.communicator = communicator
    if let v = environment["UNET_BUCKET_MB"] {
      guard let mb = Double(v), mb > 0, mb.isFinite else {
        throw DistributedError.unsupported("UNET_BUCKET_MB=\(v): must be a positive number of megabytes (default 25)")
      }
      bucketMegabytes = mb
    }
    if let v = environment["UNET_COMM_THREAD"] {
      guard v == "0" || v == "1" else { throw DistributedError.unsupported("UNET_COMM_THREAD=\(v): must be 1 (the default) or 0") }
      communicationThread = v == "1"
    }
    if let v = environment["UNET_REPLICA_CHECK_EVERY"] {
      guard let n = Int(v), n >= 0 else {
        throw DistributedError.unsupported("UNET_REPLICA_CHECK_EVERY=\(v): must be 0 (off) or a number of updates")
      }
      checkEvery = n
    }
  }
}
