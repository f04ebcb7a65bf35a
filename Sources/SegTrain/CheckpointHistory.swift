import Foundation
import SegCore

// MARK: - Step-numbered and best checkpoints

/// The copies --keep-checkpoints keeps next to the latest checkpoint (which resume reads): after
/// each save `checkpoint-<step>.safetensors`, the last `keep` of them, and
/// `checkpoint-best.safetensors`, the save with the best validation Dice, whose score is kept in
/// `checkpoint-best.json` for a resumed run to honour. Each copy is a hard link
/// to the file just written (a copy where the file system has none), put in place by a rename, so
/// that a reader never sees half a file; the latest is itself replaced by a rename, so the links
/// keep the weights they were made with. Only files named as these are ever removed.
public struct CheckpointHistory: Sendable {
  /// The latest checkpoint, `<model-dir>/checkpoint.safetensors`.
  public let latest: URL
  /// How many step-numbered copies are kept (at least 1).
  public let keep: Int

  /// The history of `latest`, keeping the last `keep` step-numbered copies.
  public init(latest: URL, keep: Int) { (self.latest, self.keep) = (latest, keep) }

  /// The model directory.
  public var directory: URL { latest.deletingLastPathComponent() }
  /// The copy of the save at `step`.
  public func url(step: Int) -> URL { directory.appendingPathComponent("checkpoint-\(step).safetensors") }
  /// The copy of the best save by validation Dice.
  public var best: URL { directory.appendingPathComponent("checkpoint-best.safetensors") }

  // MARK: - Keeping

  /// Keeps the latest checkpoint, just saved at `step`, as its step-numbered copy and removes the
  /// step-numbered copies older than the last `keep`.
  public func keep(step: Int) throws {
    try place(latest, at: url(step: step))
    for old in steps().dropLast(keep) { unlink(url(step: old).path) }
  }

  /// Makes the latest checkpoint, saved at `step`, the best one, and records its validation Dice
  /// beside it (`bestScore`) so that a resumed run knows what to beat (the caller compares).
  public func keepAsBest(step: Int, dice: Double) throws {
    try place(latest, at: best)
    try writeAtomically(JSONEncoder.sorted.encode(BestScore(step: step, evalDiceScore: dice)), to: bestScoreFile)
  }

  // MARK: - The best copy's score

  /// The step and validation Dice of the best copy, in `checkpoint-best.json`.
  public struct BestScore: Codable, Equatable, Sendable {
    /// The step of the save that is the best copy.
    public var step: Int
    /// Its `eval_dice_score` (soft Dice over the classes).
    public var evalDiceScore: Double

    enum CodingKeys: String, CodingKey { case step, evalDiceScore = "eval_dice_score" }
  }

  /// Where the best copy's score is kept.
  public var bestScoreFile: URL { directory.appendingPathComponent("checkpoint-best.json") }

  /// The recorded score of the best copy; nil without a best copy or a readable score. The copy is
  /// placed before its score is written, so a run killed between the two leaves a copy newer than
  /// the score (its step is not the score's): that copy beat the recorded score, which is then
  /// returned as a lower bound with `exact` false.
  public func recordedBest() -> (score: BestScore, exact: Bool)? {
    guard let data = FileManager.default.contents(atPath: bestScoreFile.path),
          let score = try? JSONDecoder().decode(BestScore.self, from: data), score.evalDiceScore.isFinite,
          let step = CheckpointHistory.savedStep(best) else { return nil }
    return (score, step == score.step)
  }

  /// The "step" in a checkpoint's metadata, reading only the file's header.
  static func savedStep(_ url: URL) -> Int? {
    guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
    defer { try? handle.close() }
    guard let prefix = try? handle.read(upToCount: 8), prefix.count == 8 else { return nil }
    let length = prefix.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    guard length < 100_000_000, let header = try? handle.read(upToCount: Int(length)), header.count == Int(length),
          let json = try? JSONSerialization.jsonObject(with: header) as? [String: Any],
          let metadata = json["__metadata__"] as? [String: String] else { return nil }
    return metadata["step"].flatMap { Int($0) }
  }

  /// The steps of the step-numbered copies in the directory, in increasing order.
  public func steps() -> [Int] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.compactMap { name -> Int? in
      guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors") else { return nil }
      let middle = name.dropFirst("checkpoint-".count).dropLast(".safetensors".count)
      guard !middle.isEmpty, middle.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
      return Int(middle)
    }.sorted()
  }

  // MARK: - Placing a file

  /// Links (or copies) `source` to a temporary name next to `target`, then renames it over `target`.
  private func place(_ source: URL, at target: URL) throws {
    let temporary = directory.appendingPathComponent(".\(target.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    if link(source.path, temporary.path) != 0 {
      do {
        try FileManager.default.copyItem(at: source, to: temporary)
      } catch {
        unlink(temporary.path)
        throw FileError(file: target.path, "not written: \(FileProblem.describe(error, path: target.path, expectingFolder: false)); \(latest.lastPathComponent) is saved")
      }
    }
    guard rename(temporary.path, target.path) == 0 else {
      let why = String(cString: strerror(errno))
      unlink(temporary.path)
      throw FileError(file: target.path, "not written: \(why); \(latest.lastPathComponent) is saved")
    }
  }
}
