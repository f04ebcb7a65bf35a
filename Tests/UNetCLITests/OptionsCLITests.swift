import Foundation
import SegData
import Testing

// MARK: - Each subcommand's own options

@Suite(.serialized) struct OptionsCLITests {
  @Test func evaluateRefusesTheTrainingFlagAugment() throws {
    let r = try unet(["evaluate", "--augment"] + tinyModel)
    #expect(r.status != 0)
    #expect(r.output.contains("--augment does not apply to unet evaluate") && r.output.contains("option of unet train"), "\(r.output)")
  }

  @Test func predictRefusesTheLearningRateInBothSpellings() throws {
    for flag in ["--learning-rate", "--learning_rate"] {
      let r = try unet(["predict", flag, "1"] + tinyModel)
      #expect(r.status != 0)
      #expect(r.output.contains("\(flag) does not apply to unet predict") && r.output.contains("unet train"), "\(r.output)")
    }
  }

  @Test func trainRefusesPredictsFiles() throws {
    let r = try unet(["train", "--probabilities"] + tinyModel)
    #expect(r.status != 0)
    #expect(r.output.contains("--probabilities does not apply to unet train") && r.output.contains("unet predict"), "\(r.output)")
  }

  @Test func anUnknownFlagIsLeftToArgumentParser() throws {
    let r = try unet(["evaluate", "--no-such-flag"])
    #expect(r.status != 0 && r.output.contains("Unknown option '--no-such-flag'"), "\(r.output)")
  }

  @Test func helpGroupsTheOptionsUnderTitles() throws {
    let train = try unet(["train", "--help"]).output
    let titles = ["MODE:", "DATA:", "MODEL:", "TRAINING:", "PRECISION AND DEVICE:", "EVALUATION AND PREDICTION:", "LOGGING:"]
    let positions = titles.map { train.range(of: "\n" + $0 + "\n")?.lowerBound }
    #expect(positions.allSatisfy { $0 != nil }, "\(train)")
    #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "in this order: \(train)")
    for flag in ["--exec_mode", "--augment", "--learning-rate", "--warmup-steps", "--benchmark", "--amp", "--tta", "--log-every"] {
      #expect(train.contains(flag), "\(flag)")
    }
    let evaluate = try unet(["evaluate", "--help"]).output
    #expect(evaluate.contains("--output") && evaluate.contains("--fold") && evaluate.contains("EVALUATION AND PREDICTION:"))
    #expect(!evaluate.contains("--augment") && !evaluate.contains("--learning-rate") && !evaluate.contains("--exec-mode"), "\(evaluate)")
    let predict = try unet(["predict", "--help"]).output
    #expect(predict.contains("--input") && predict.contains("--probabilities") && !predict.contains("--fold "), "\(predict)")
  }

  @Test func settingErrorsOfTheLibrariesNameTheFlag() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    #expect(try unet(["data", "synth", "--output", root.path, "--size", "32", "--train-count", "3", "--test-count", "1"]).status == 0)
    let fold = try unet(["train", "--data-dir", root.path, "--fold", "7", "--folds", "3", "--max-steps", "1"] + tinyModel)
    #expect(fold.status != 0 && fold.output.contains("--fold 7: out of range; with 3 folds it must be 0...2"), "\(fold.output)")
    let model = try unet(["evaluate", "--model-dir", "/nonexistent/model"] + tinyModel)
    #expect(model.status != 0 && model.output.contains("--model-dir /nonexistent/model: no checkpoint"), "\(model.output)")
  }

  /// The reference's snake_case spellings, --exec_mode train_and_predict among them.
  @Test func theReferencesSpellingsTrainAndPredict() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, model = root.appendingPathComponent("model")
    #expect(try unet(["data", "synth", "--output", data, "--size", "32", "--train-count", "3", "--test-count", "1"]).status == 0)
    let r = try unet(["train", "--exec_mode", "train_and_predict", "--data_dir", data, "--model_dir", model.path, "--max_steps", "1",
                      "--batch_size", "1", "--log_every", "1", "--learning_rate", "1e-3", "--fold", "0", "--folds", "3"] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.contains("step 1: train_ce_loss"), "\(r.output)")
    #expect(FileManager.default.fileExists(atPath: model.appendingPathComponent("predictions/test-masks.tif").path))
  }
}
