import Foundation
import SegCore

// MARK: - Step-numbered and best checkpoints

/// The copies --keep-checkpoints keeps next to the latest checkpoint (which resume reads): after
/// each save `checkpoint-<step>.safetensors`, the last `keep` of them, and
/// `checkpoint-best.safetensors`, the save with the best validation Dice. Each copy is a hard link
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

  /// Makes the latest checkpoint the best one (the caller compares the scores).
  public func keepAsBest() throws { try place(latest, at: best) }

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
