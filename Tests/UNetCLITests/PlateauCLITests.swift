import Foundation
import Testing

// MARK: - The plateau warning

@Suite(.serialized) struct PlateauCLITests {
  /// A learning rate too small to move the weights keeps a run on the class-prior plateau: after
  /// 200 steps the log says so and names what to try, leaving out what the run already does.
  @Test func aRunStillOnThePlateauAfter200StepsSaysSo() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path
    let synth = try unet(["data", "synth", "--output", data, "--size", "48", "--train-count", "3", "--test-count", "1"])
    try #require(synth.status == 0, "\(synth.output)")
    let common = ["train", "--data-dir", data, "--exec-mode", "train", "--batch-size", "2", "--max-steps", "201", "--log-every", "100",
                  "--learning-rate", "1e-12", "--workers", "1"] + tinyModel
    let reference = try unet(common + ["--init", "glorot", "--head-bias", "zero"])
    #expect(reference.status == 0, "\(reference.output)")
    #expect(reference.output.contains("still on the class-prior plateau after 200 steps"), "\(reference.output)")
    #expect(reference.output.contains("Try --init he, --head-bias prior, --lr-warmup-steps 50"), "\(reference.output)")

    let ours = try unet(common + ["--lr-warmup-steps", "10"])
    #expect(ours.status == 0, "\(ours.output)")
    #expect(ours.output.contains("still on the class-prior plateau"), "\(ours.output)")
    #expect(!ours.output.contains("--init he") && !ours.output.contains("--head-bias prior"), "\(ours.output)")

  }

  @Test func badStartOptionsAreRefusedWithTheFlag() throws {
    let warmup = try unet(["train", "--lr-warmup-steps", "-1"])
    #expect(warmup.status != 0 && warmup.output.contains("--lr-warmup-steps"), "\(warmup.output)")
    let initializer = try unet(["train", "--init", "lecun"])
    #expect(initializer.status != 0 && initializer.output.contains("--init"), "\(initializer.output)")
    let dump = try unet(["train", "--dump-steps", "20"])
    #expect(dump.status != 0 && dump.output.contains("--dump-steps"), "\(dump.output)")
  }
}
