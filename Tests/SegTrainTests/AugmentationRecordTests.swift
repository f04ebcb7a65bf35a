import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

// MARK: - The augmentation a checkpoint records, and a resumed run

@Suite struct AugmentationRecordTests {
  static func options() -> AugmentationOptions {
    var o = AugmentationOptions(kinds: [.flip, .noise, .elastic])
    (o.maxNoiseStd, o.noiseProbability, o.elasticSigma) = (0.1, 1, 3)
    return o
  }

  /// A 4-step training run of a tiny model on two 16x16 generated slices, on the reference backend.
  static func settings(_ dir: URL, steps: Int) -> RunSettings {
    var s = RunSettings()
    s.mode = .train
    s.modelDir = dir
    var c = UNetConfig()
    (c.baseFilters, c.depth, c.padding, c.inputSize) = (2, 1, .same, 8)
    s.model = c
    (s.syntheticSlices, s.syntheticSize, s.syntheticTestSlices) = (2, 16, 0)
    (s.training.batchSize, s.training.maxSteps, s.training.logEvery, s.training.learningRate, s.workers) = (1, steps, 1, 1e-2, 0)
    return s
  }

  static func run(_ s: RunSettings) throws -> [String] {
    var said: [String] = []
    try Runner(settings: s, backend: ReferenceBackend.shared, precision: PrecisionPolicy(s.precision, on: ReferenceBackend.shared),
               say: { said.append($0) }).run()
    return said
  }

  @Test func checkpointsRecordTheAugmentation() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = try CheckpointTests.trainer(seed: 1)
    let url = dir.appendingPathComponent("ckpt.safetensors")
    try Checkpoint(model: t.model, optimizer: t.optimizer, augmentation: Self.options()).save(to: url)
    #expect(try Checkpoint.load(from: url).augmentation == Self.options())
    try Checkpoint(model: t.model, optimizer: t.optimizer, augmentation: AugmentationOptions.none).save(to: url)
    #expect(try Checkpoint.load(from: url).augmentation == AugmentationOptions.none, "none is recorded too")
    try Checkpoint(model: t.model, optimizer: t.optimizer).save(to: url)
    #expect(try Checkpoint.load(from: url).augmentation == nil, "older files have no record")

    var (tensors, metadata) = try SafeTensors.read(from: url)
    for bad in [#"{"augmentations": ["spin"]}"#, #"{"augmentations": ["noise"], "noise_std": 5}"#, "not json"] {
      metadata["augmentation"] = bad
      try SafeTensors.write(tensors, metadata: metadata, to: url)
      expectFileError(url, "\"augmentation\"") { _ = try Checkpoint.load(from: url) }
    }
  }

  @Test func theRecordDecidesAResumedRunsAugmentation() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let t = try CheckpointTests.trainer(seed: 1)
    let recorded = try Checkpoint(model: t.model, optimizer: t.optimizer, augmentation: Self.options())
    var s = Self.settings(dir, steps: 1)
    s.resume = true
    #expect(try CheckpointPolicy(settings: s).augmentation(resuming: recorded) == Self.options(), "no flags: the checkpoint's")
    s.augmentation = Self.options()
    s.augmentationGiven = true
    #expect(try CheckpointPolicy(settings: s).augmentation(resuming: recorded) == Self.options(), "the same flags")
    s.augmentation.maxNoiseStd = 0.2
    #expect { try CheckpointPolicy(settings: s).augmentation(resuming: recorded) } throws: { error in
      guard let e = error as? SettingError, e.setting == .augmentations else { return false }
      return "\(e)".contains("trained with flip, noise (std up to 0.1), elastic") && "\(e)".contains("drop the augmentation flags")
    }
    let old = try Checkpoint(model: t.model, optimizer: t.optimizer)
    #expect(try CheckpointPolicy(settings: s).augmentation(resuming: old) == s.augmentation, "no record: the settings'")
  }

  /// Two steps, then two more resumed without augmentation flags, give the weights of four
  /// uninterrupted steps: the resumed run drew the checkpoint's augmentation. Resumed with none,
  /// the weights differ, so the augmentation mattered.
  @Test func aResumedRunAugmentsAsTheFirstDid() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    var whole = Self.settings(root.appendingPathComponent("whole"), steps: 4)
    (whole.augmentation, whole.augmentationGiven) = (Self.options(), true)
    let said = try Self.run(whole)
    #expect(said.contains("unet: augmentation: flip, noise (std up to 0.1), elastic (sigma 3.0 px, 3x3 grid)"), "\(said)")

    var first = Self.settings(root.appendingPathComponent("parts"), steps: 2)
    (first.augmentation, first.augmentationGiven) = (Self.options(), true)
    _ = try Self.run(first)
    var rest = Self.settings(root.appendingPathComponent("parts"), steps: 4)
    rest.resume = true
    let resumed = try Self.run(rest)
    #expect(resumed.contains { $0.hasPrefix("unet: augmentation: flip") && $0.hasSuffix("(the checkpoint's)") }, "\(resumed)")
    let a = try Checkpoint.load(from: whole.checkpointURL!), b = try Checkpoint.load(from: rest.checkpointURL!)
    #expect(a.step == 4 && b.step == 4 && b.augmentation == Self.options())
    expectSame(a.weights, b.weights)

    var plain = Self.settings(root.appendingPathComponent("plain"), steps: 2)
    plain.augmentation = .none
    _ = try Self.run(plain)
    let unaugmented = try Checkpoint.load(from: plain.checkpointURL!)
    let twoAugmented = root.appendingPathComponent("two")
    var two = Self.settings(twoAugmented, steps: 2)
    two.augmentation = Self.options()
    _ = try Self.run(two)
    #expect(try Checkpoint.load(from: two.checkpointURL!).weights.mapValues(\.doubles) != unaugmented.weights.mapValues(\.doubles))
  }
}
