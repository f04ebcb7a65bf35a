import Foundation
import Testing

// MARK: - Keeping step-numbered and best checkpoints

@Suite struct KeepCheckpointsCLITests {
  /// The "step" of a checkpoint file's safetensors metadata.
  private func savedStep(_ url: URL) throws -> Int? {
    let data = try Data(contentsOf: url)
    let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any]
    return ((header?["__metadata__"] as? [String: String])?["step"]).flatMap { Int($0) }
  }

  /// The step and eval_dice_score of each evaluation the console printed, in order.
  private func evaluations(_ output: String) -> [(step: Int, dice: Double)] {
    var scores: [(step: Int, dice: Double)] = []
    for line in output.split(separator: "\n") where line.contains("evaluation at step") {
      let words = line.split(separator: " ")
      guard let i = words.firstIndex(of: "step"), let d = words.firstIndex(of: "eval_dice_score"),
            let step = Int(words[i + 1]), let dice = Double(words[d + 1].trimmingCharacters(in: .punctuationCharacters)) else { continue }
      scores.append((step, dice))
    }
    return scores
  }

  @Test func keepsTheLastKStepsAndTheBestByDice() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model")
    try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
    let unrelated = model.appendingPathComponent("checkpoint-notes.txt")
    try Data("mine".utf8).write(to: unrelated)
    let r = try unet(["train", "--max-steps", "6", "--evaluate-every", "2", "--keep-checkpoints", "2", "--workers", "0",
                      "--learning-rate", "1e-2", "--model-dir", model.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    let names = Set(try FileManager.default.contentsOfDirectory(atPath: model.path).filter { $0.hasPrefix("checkpoint") })
    #expect(names == ["checkpoint.safetensors", "checkpoint-4.safetensors", "checkpoint-6.safetensors",
                      "checkpoint-best.safetensors", "checkpoint-best.json", "checkpoint-notes.txt"], "\(names)\n\(r.output)")
    #expect(try savedStep(model.appendingPathComponent("checkpoint-4.safetensors")) == 4)
    #expect(try savedStep(model.appendingPathComponent("checkpoint-6.safetensors")) == 6)
    // The evaluations at steps 2 and 4 and the run's own at 6: the best is the first highest score.
    let scores = evaluations(r.output)
    #expect(scores.map(\.step) == [2, 4, 6], "\(r.output)")
    let best = try scores.dropFirst().reduce(#require(scores.first)) { $1.dice > $0.dice ? $1 : $0 }
    #expect(try savedStep(model.appendingPathComponent("checkpoint-best.safetensors")) == best.step, "\(r.output)")
    // The best copy's score is kept beside it, for a resumed run to beat.
    let score = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("checkpoint-best.json"))) as? [String: Any]
    #expect(score?["step"] as? Int == best.step && (score?["eval_dice_score"] as? Double).map { abs($0 - best.dice) < 5e-5 } == true, "\(String(describing: score))")
  }

  @Test func theBestIsAnEvaluatedSaveNotTheLatest() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model")
    // Train mode scores only the periodic evaluations (steps 2 and 4), not the last save (5).
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "5", "--evaluate-every", "2", "--keep-checkpoints", "1",
                      "--workers", "0", "--learning-rate", "1e-2", "--model-dir", model.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    let names = Set(try FileManager.default.contentsOfDirectory(atPath: model.path))
    #expect(names == ["checkpoint.safetensors", "checkpoint-5.safetensors", "checkpoint-best.safetensors", "checkpoint-best.json"], "\(names)")
    let scores = evaluations(r.output)
    #expect(scores.map(\.step) == [2, 4], "\(r.output)")
    let best = try scores.dropFirst().reduce(#require(scores.first)) { $1.dice > $0.dice ? $1 : $0 }
    #expect(try savedStep(model.appendingPathComponent("checkpoint-best.safetensors")) == best.step, "\(r.output)")
  }

  @Test func refusesKeepingNone() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let r = try unet(["train", "--max-steps", "1", "--keep-checkpoints", "0", "--workers", "0",
                      "--model-dir", root.appendingPathComponent("model").path] + tinyModel)
    #expect(r.status != 0 && r.output.contains("--keep-checkpoints 0"), "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("model/checkpoint.safetensors").path))
  }
}
