import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Checkpoint

/// A training state in a safetensors file: the weights under their `Parameter` names, Adam's
/// moments as "adam.m/<name>" and "adam.v/<name>", and in the metadata the format version, the
/// training and Adam steps, the `UNetConfig` as JSON, the precision and, for a loss-scaled run,
/// the loss scale and its counters ("loss_scale", "loss_scale.good_steps",
/// "loss_scale.skipped_steps"; absent in older files, which then resume at the defaults) and the
/// augmentation of the run that trained it as JSON ("augmentation", `AugmentationOptions`' record;
/// absent in older files).
public struct Checkpoint {
  /// The layout written by this code; `load` rejects others.
  public static let formatVersion = 1
  static let formatName = "unetseg-checkpoint"

  public var config: UNetConfig
  /// Weights by parameter name.
  public var weights: [String: HostTensor]
  /// Adam's first and second moments by parameter name; empty before the first update.
  public var moments: [String: (m: HostTensor, v: HostTensor)]
  /// Adam's update count (its bias correction depends on it).
  public var adamStep: Int
  /// Training steps done.
  public var step: Int
  /// The precision the run asked for: "fp32", "tf32", "fp16" or "bf16" (the weights are f32 in
  /// every case).
  public var precision: String
  /// The dynamic loss scale's state of an fp16 run; nil for other runs and older files.
  public var lossScale: LossScaler.State?
  /// The augmentations (and magnitudes) of the training run, so that a resumed run draws the same;
  /// nil when not recorded (older files, checkpoints written outside a run).
  public var augmentation: AugmentationOptions?
  /// The file this checkpoint was loaded from, for error messages.
  public var source: String?

  /// The current state of `model` and `optimizer`; `step` defaults to Adam's update count.
  public init(
    model: UNet, optimizer: Adam, step: Int? = nil, precision: String = "fp32", lossScale: LossScaler.State? = nil,
    augmentation: AugmentationOptions? = nil
  ) throws {
    config = model.config
    weights = try Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, try $0.value.host()) })
    moments = try optimizer.moments.mapValues { (m: try $0.m.host(), v: try $0.v.host()) }
    adamStep = optimizer.step
    self.step = step ?? optimizer.step
    self.precision = precision
    self.lossScale = lossScale
    self.augmentation = augmentation
  }

  // MARK: - Files

  /// Writes the checkpoint atomically: a reader never sees a partial file, and a failed write
  /// leaves any existing file at `url` intact. A checkpoint with an inf or NaN weight or moment
  /// is refused before anything is written, so that a diverged model never replaces a good one.
  public func save(to url: URL) throws {
    let tensors = allTensors
    if let bad = Divergence.firstNonFinite(tensors) {
      throw FileError(file: url.path, "not written: \"\(bad)\" holds inf or NaN values (the training diverged); any existing checkpoint is kept")
    }
    let configJSON = try JSONEncoder.sorted.encode(config)
    var metadata = [
      "format": Checkpoint.formatName, "format_version": String(Checkpoint.formatVersion),
      "step": String(step), "adam.step": String(adamStep), "precision": precision,
      "config": String(decoding: configJSON, as: UTF8.self),
    ]
    if let ls = lossScale {
      metadata["loss_scale"] = String(ls.scale)
      metadata["loss_scale.good_steps"] = String(ls.goodSteps)
      metadata["loss_scale.skipped_steps"] = String(ls.skippedSteps)
    }
    if let augmentation {
      metadata["augmentation"] = String(decoding: try JSONEncoder.sorted.encode(augmentation), as: UTF8.self)
    }
    try SafeTensors.write(tensors, metadata: metadata, to: url)
  }

  /// The weights by name and Adam's moments as "adam.m/<name>" and "adam.v/<name>".
  var allTensors: [String: HostTensor] {
    var tensors = weights
    for (name, mv) in moments {
      tensors["adam.m/" + name] = mv.m
      tensors["adam.v/" + name] = mv.v
    }
    return tensors
  }

  /// Reads and checks a checkpoint written by `save`; one holding an inf or NaN weight or moment
  /// is refused (it is of a diverged run: nothing can be evaluated, predicted or resumed from it).
  public static func load(from url: URL) throws -> Checkpoint {
    let (tensors, metadata) = try SafeTensors.read(from: url)
    func fail(_ why: String) -> FileError { FileError(file: url.path, why) }
    guard metadata["format"] == formatName else { throw fail("not a U-Net checkpoint (metadata \"format\" is not \"\(formatName)\")") }
    guard let version = metadata["format_version"].flatMap(Int.init), version == formatVersion else {
      throw fail("checkpoint format version \(metadata["format_version"] ?? "missing"), this program reads \(formatVersion)")
    }
    if let bad = Divergence.firstNonFinite(tensors) {
      throw fail("\"\(bad)\" holds inf or NaN values: the model diverged and cannot be used; train it again (with a lower learning rate) or resume from an older copy")
    }
    func integer(_ key: String) throws -> Int {
      guard let v = metadata[key].flatMap(Int.init), v >= 0 else { throw fail("metadata \"\(key)\" is missing or not a count") }
      return v
    }
    let config: UNetConfig
    do {
      config = try JSONDecoder().decode(UNetConfig.self, from: Data((metadata["config"] ?? "").utf8))
    } catch {
      throw fail("metadata \"config\" is missing or not a U-Net configuration: \(error)")
    }
    var weights: [String: HostTensor] = [:]
    var ms: [String: HostTensor] = [:], vs: [String: HostTensor] = [:]
    for (name, t) in tensors {
      if name.hasPrefix("adam.m/") {
        ms[String(name.dropFirst(7))] = t
      } else if name.hasPrefix("adam.v/") {
        vs[String(name.dropFirst(7))] = t
      } else {
        weights[name] = t
      }
    }
    guard Set(ms.keys) == Set(vs.keys) else {
      throw fail("Adam moments are incomplete: m and v differ for \(Set(ms.keys).symmetricDifference(vs.keys).sorted())")
    }
    var moments: [String: (m: HostTensor, v: HostTensor)] = [:]
    for (name, m) in ms { moments[name] = (m, vs[name]!) }
    var lossScale: LossScaler.State?
    if let text = metadata["loss_scale"] {
      guard let scale = Double(text), scale.isFinite, scale >= LossScaler.minimumScale else {
        throw fail("metadata \"loss_scale\" is \"\(text)\", not a finite scale of at least 1")
      }
      lossScale = LossScaler.State(scale: scale, goodSteps: try integer("loss_scale.good_steps"),
                                   skippedSteps: try integer("loss_scale.skipped_steps"))
    }
    var checkpoint = Checkpoint(
      config: config, weights: weights, moments: moments,
      adamStep: try integer("adam.step"), step: try integer("step"), precision: metadata["precision"] ?? "fp32", source: url.path)
    checkpoint.lossScale = lossScale
    if let text = metadata["augmentation"] {
      do {
        let augmentation = try JSONDecoder().decode(AugmentationOptions.self, from: Data(text.utf8))
        try augmentation.validate()
        checkpoint.augmentation = augmentation
      } catch {
        throw fail("metadata \"augmentation\" is not a valid augmentation record: \(error)")
      }
    }
    return checkpoint
  }

  private init(
    config: UNetConfig, weights: [String: HostTensor], moments: [String: (m: HostTensor, v: HostTensor)], adamStep: Int,
    step: Int, precision: String, source: String?
  ) {
    self.config = config
    self.weights = weights
    self.moments = moments
    self.adamStep = adamStep
    self.step = step
    self.precision = precision
    self.source = source
  }

  // MARK: - Restoring

  /// Puts the weights into `model` and the moments and step into `optimizer`, after checking that
  /// the configs are equal and every tensor's name, dtype and shape match the model's parameters.
  /// On error neither is changed.
  public func apply(to model: UNet, optimizer: Adam) throws {
    func fail(_ why: String) -> FileError { FileError(file: source, why) }
    if config != model.config {
      throw fail("the checkpoint's model differs from this one: \(Checkpoint.differences(config, model.config))")
    }
    let params = model.parameters
    let names = Set(params.map(\.name))
    if let extra = Set(weights.keys).subtracting(names).sorted().first {
      throw fail("tensor \"\(extra)\" is not a parameter of this model")
    }
    if let extra = Set(moments.keys).subtracting(names).sorted().first {
      throw fail("Adam moments \"\(extra)\" belong to no parameter of this model")
    }
    if adamStep > 0, let missing = params.first(where: { moments[$0.name] == nil }) {
      throw fail("Adam moments for \"\(missing.name)\" are missing after \(adamStep) updates")
    }
    func checked(_ t: HostTensor?, _ label: String, like p: Parameter) throws -> Tensor {
      guard let t else { throw fail("\(label) is missing") }
      guard t.type == p.value.type else { throw fail("\(label) is \(t.type), the model's is \(p.value.type)") }
      return try Tensor(t, on: p.value.backend)
    }
    // Everything is converted before anything is assigned, so a failure changes nothing.
    var values: [Tensor] = []
    var restored: [String: (m: Tensor, v: Tensor)] = [:]
    for p in params {
      values.append(try checked(weights[p.name], "weight \"\(p.name)\"", like: p))
      if let mv = moments[p.name] {
        restored[p.name] = (try checked(mv.m, "adam.m/\(p.name)", like: p), try checked(mv.v, "adam.v/\(p.name)", like: p))
      }
    }
    for (p, v) in zip(params, values) { p.value = v }
    optimizer.restore(step: adamStep, moments: restored)
  }

  /// "field: checkpoint X, model Y" for every field where two configs differ.
  static func differences(_ a: UNetConfig, _ b: UNetConfig) -> String {
    zip(Mirror(reflecting: a).children, Mirror(reflecting: b).children)
      .filter { "\($0.0.value)" != "\($0.1.value)" }
      .map { "\($0.0.label ?? "?"): checkpoint \($0.0.value), model \($0.1.value)" }
      .joined(separator: "; ")
  }
}

extension JSONEncoder {
  /// An encoder with sorted keys, so equal values give equal bytes.
  static var sorted: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    return e
  }
}
