import Foundation
import SegCore
import SegNN

// MARK: - Recording the first steps

/// Writes what the first `steps` updates of a run computed on, so that another framework can
/// repeat them exactly (`bench/golden_torch.py` does, in PyTorch): the initial weights, each
/// step's batch and dropout mask, each step's losses and the weights after the last recorded step.
/// It is the run's `BatchSource` (wrapping the pipeline, to see the batches) and a callback.
///
/// Files in `directory`:
/// - `initial.safetensors`: every parameter by name (kernels HWIO; transposed kernels [k,k,out,in]),
///   with metadata `config` (the UNetConfig as JSON), `learning_rate`, `weight_decay`,
///   `adam_beta1`, `adam_beta2`, `adam_epsilon`, `lr_warmup_steps`, `steps`;
/// - `step-NNNN.safetensors` (NNNN from 0): `images` [N,S,S,C], `targets` [N,S',S',K] one-hot and
///   `dropout_mask` [N,B,B,F] (0 or 1/(1-rate), the bottleneck's; absent without dropout);
/// - `final.safetensors`: every parameter after `steps` updates;
/// - `losses.json`: `{"steps": [{"step": 1, "cross_entropy": ..., "dice": ..., "total": ...}, ...]}`.
public final class StepRecorder: TrainingCallback, BatchSource {
  /// Where the files go (created when training starts).
  public let directory: URL
  /// Updates recorded.
  public let steps: Int
  private let source: any BatchSource
  private let seed: UInt64
  private var losses: [[String: Double]] = []

  /// A recorder of the first `steps` updates of a run seeded with `seed`, reading batches from `source`.
  public init(directory: URL, steps: Int, source: any BatchSource, seed: UInt64) throws {
    guard steps >= 1 else { throw SettingError(.dumpSteps, value: steps, "must record at least 1 step") }
    (self.directory, self.steps, self.source, self.seed) = (directory, steps, source, seed)
  }

  // MARK: - Batches

  /// The wrapped source's next batch, written first when it is one of the recorded steps.
  public func next() throws -> HostBatch {
    let batch = try source.next()
    guard batch.index < steps else { return batch }
    var tensors: [String: HostTensor] = [
      "images": try HostTensor(shape: Shape(batch.imageShape), floats: batch.images),
      "targets": try HostTensor(shape: Shape(batch.targetShape), floats: batch.targets),
    ]
    if let mask = try dropoutMask(step: batch.index, batch: batch.imageShape[0]) { tensors["dropout_mask"] = mask }
    try SafeTensors.write(tensors, metadata: ["step": String(batch.index)], to: file(String(format: "step-%04ld", batch.index)))
    return batch
  }

  private var config: UNetConfig?

  /// The mask `UNet` multiplies the bottleneck by at `step`: the same op with the same seed.
  private func dropoutMask(step: Int, batch: Int) throws -> HostTensor? {
    guard let config, config.dropout > 0, let g = config.geometry(input: config.inputSize) else { return nil }
    let dropoutSeed = CounterRandom.mix(seed ^ CounterRandom.mix(UInt64(step)))
    let shape: Shape = [batch, g.bottleneck, g.bottleneck, config.filters(level: config.depth)]
    return try randomMask(shape: shape, keepProbability: 1 - config.dropout, seed: dropoutSeed, on: ReferenceBackend.shared).host()
  }

  // MARK: - Callback

  public func trainingStarted(_ loop: TrainingLoop) throws {
    config = loop.model.config
    do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
      throw SettingError(.dumpSteps, value: directory.path, "cannot be created: \(FileProblem.describe(error, path: directory.path, expectingFolder: true))")
    }
    let o = loop.options, adam = loop.optimizer
    let configJSON = String(decoding: try JSONEncoder().encode(loop.model.config), as: UTF8.self)
    let metadata = [
      "config": configJSON, "learning_rate": "\(o.learningRate)", "weight_decay": "\(o.weightDecay)",
      "adam_beta1": "\(adam.beta1)", "adam_beta2": "\(adam.beta2)", "adam_epsilon": "\(adam.epsilon)",
      "lr_warmup_steps": "\(o.learningRateWarmupSteps)", "steps": "\(steps)", "first_step": "\(loop.firstStep)",
    ]
    try writeWeights(loop.model, name: "initial", metadata: metadata)
  }

  public func readsMetrics(at step: Int, in loop: TrainingLoop) -> Bool { step <= steps }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard event.step <= steps else { return }
    let m = event.metrics
    losses.append(["step": Double(event.step), "cross_entropy": m.crossEntropy, "dice": m.dice, "total": m.total])
    guard event.step == steps else { return }
    try writeWeights(loop.model, name: "final", metadata: ["step": "\(event.step)"])
    let json = try JSONSerialization.data(withJSONObject: ["steps": losses], options: [.prettyPrinted, .sortedKeys])
    try writeAtomically(json, to: file("losses", extension: "json"))
  }

  // MARK: - Files

  private func writeWeights(_ model: UNet, name: String, metadata: [String: String]) throws {
    var tensors: [String: HostTensor] = [:]
    for p in model.parameters { tensors[p.name] = try p.value.host().converted(to: .f32) }
    try SafeTensors.write(tensors, metadata: metadata, to: file(name))
  }

  private func file(_ name: String, extension ext: String = "safetensors") -> URL {
    directory.appendingPathComponent(name).appendingPathExtension(ext)
  }
}
