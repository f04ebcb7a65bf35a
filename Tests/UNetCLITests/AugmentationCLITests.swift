import Foundation
import SegData
import Testing

// MARK: - --augment and its magnitudes

/// The metadata of a safetensors file: the header's "__metadata__" (8-byte little-endian header
/// length, then the JSON header).
func safetensorsMetadata(_ url: URL) throws -> [String: String] {
  let data = try Data(contentsOf: url)
  let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
  let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any]
  return header?["__metadata__"] as? [String: String] ?? [:]
}

@Suite(.serialized) struct AugmentationCLITests {
  @Test func badListsAndMagnitudesNameTheFlag() throws {
    let cases: [([String], String)] = [
      (["--augment", "flip,spin"], "--augment flip,spin: unknown augmentation \"spin\"; the augmentations are flip, rot90, zoom, brightness, contrast, noise, elastic"),
      (["--augment", "none,flip"], "--augment none,flip: \"none\" cannot be combined"),
      (["--augment", "zoom", "--zoom-range", "0.5"], "--zoom-range 0.5: must be in [0, 0.5)"),
      (["--augment", "brightness", "--brightness_range", "3"], "--brightness-range 3.0: must be in [0, 2]"),
      (["--augment", "contrast", "--contrast-range", "1.25,0.75"], "--contrast-range 1.25,0.75: give two factors low,high with low <= high"),
      (["--augment", "contrast", "--contrast-range", "nan,1"], "--contrast-range nan,1: give two factors"),
      (["--augment", "noise", "--noise-std", "-0.1"], "--noise-std -0.1: must be in [0, 2]"),
      (["--augment", "elastic", "--elastic-sigma", "inf"], "--elastic-sigma inf: must be in [0, 1000.0] pixels"),
      (["--augment", "elastic", "--elastic-grid", "1"], "--elastic-grid 1: control points per side must be in 2...32"),
      (["--augment", "flip", "--noise-std", "0.1"], "--noise-std: sets noise, which does not run (--augment flip); add noise to the list"),
      (["--elastic-grid", "4"], "--elastic-grid: sets elastic, which does not run (--augment none)"),
    ]
    for (flags, message) in cases {
      let r = try unet(["train", "--max-steps", "1"] + flags + tinyModel)
      #expect(r.status != 0 && r.output.contains(message), "\(flags): \(r.output)")
    }
    let misplaced = try unet(["predict", "--noise-std", "0.1"])
    #expect(misplaced.status != 0 && misplaced.output.contains("--noise-std does not apply to unet predict"), "\(misplaced.output)")
  }

  @Test func helpListsTheAugmentationsAndTheirFlags() throws {
    let help = try unet(["train", "--help"]).output
    let section = try #require(help.range(of: "\nAUGMENTATION:\n")).upperBound
    // Lines wrap at the terminal's width: compare with single spaces.
    let group = String(help[section...]).components(separatedBy: "\nMODEL:\n")[0].split(whereSeparator: \.isWhitespace).joined(separator: " ")
    for flag in ["--augment [<list>]", "--zoom-range", "--brightness-range", "--contrast-range", "--noise-std", "--elastic-sigma", "--elastic-grid"] {
      #expect(group.contains(flag), "\(flag): \(group)")
    }
    #expect(group.contains("flip, rot90, zoom, brightness, contrast, noise") && group.contains("(default 0.3: up to 2.5x)"), "\(group)")
  }

  /// The bare flag is the default set wherever it stands; a list is recorded in the checkpoint; a
  /// resumed run without flags takes it, and one with other flags is refused.
  @Test func theListIsRecordedAndResumed() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model")
    #expect(try unet(["data", "synth", "--output", data, "--size", "32", "--train-count", "3", "--test-count", "1"]).status == 0)
    let common = ["--data-dir", data, "--exec-mode", "train", "--fold", "0", "--folds", "3", "--workers", "0"] + tinyModel
    let defaultSet = "unet: augmentation: flip, rot90\n"
    for arguments in [["--augment", "--max-steps", "1"], ["--max-steps", "1", "--augment"], ["--augment=default", "--max-steps", "1"]] {
      let r = try unet(["train"] + arguments + common)
      #expect(r.status == 0 && r.output.contains(defaultSet), "\(arguments): \(r.output)")
    }
    let plain = try unet(["train", "--max-steps", "1"] + common)
    #expect(plain.status == 0 && !plain.output.contains("augmentation"), "\(plain.output)")

    let first = try unet(["train", "--model-dir", model.path, "--max-steps", "1", "--augment", "noise,flip", "--noise_std", "0.1"] + common)
    #expect(first.status == 0 && first.output.contains("unet: augmentation: flip, noise (std up to 0.1)\n"), "\(first.output)")
    let metadata = try safetensorsMetadata(model.appendingPathComponent("checkpoint.safetensors"))
    let record = try JSONSerialization.jsonObject(with: Data(try #require(metadata["augmentation"]).utf8)) as? [String: Any]
    #expect(record?["augmentations"] as? [String] == ["flip", "noise"] && record?["noise_std"] as? Double == 0.1, "\(metadata)")

    let resumed = try unet(["train", "--model-dir", model.path, "--max-steps", "2", "--resume-training"] + common)
    #expect(resumed.status == 0 && resumed.output.contains("unet: augmentation: flip, noise (std up to 0.1) (the checkpoint's)"), "\(resumed.output)")
    let changed = try unet(["train", "--model-dir", model.path, "--max-steps", "3", "--resume-training", "--augment"] + common)
    #expect(changed.status != 0 && changed.output.contains("--augment flip,rot90: the checkpoint in \(model.path) was trained with flip, noise (std up to 0.1), not flip, rot90"), "\(changed.output)")
    #expect(changed.output.contains("drop the augmentation flags to resume with the checkpoint's"), "\(changed.output)")
  }

  @Test func thePipelineBenchmarkTakesTheList() throws {
    let bad = try unet(["benchmark", "pipeline", "--augment", "flip,twist"])
    #expect(bad.status != 0 && bad.output.contains("unknown augmentation \"twist\""), "\(bad.output)")
    let both = try unet(["benchmark", "pipeline", "--no-augment", "--augment", "flip"])
    #expect(both.status != 0 && both.output.contains("--no-augment: give it alone"), "\(both.output)")
    let help = try unet(["benchmark", "pipeline", "--help"]).output
    #expect(help.contains("--augment [<list>]") && help.contains("--elastic-sigma") && help.contains("--no-augment"), "\(help)")
  }
}
