import Foundation
import Testing

// MARK: - Helpers

/// The header of a safetensors file: its JSON object and where the tensor data starts.
private func safetensorsHeader(_ data: Data) throws -> (header: [String: Any], dataStart: Int) {
  let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
  let header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
  return (header, 8 + length)
}

/// The "step" in a checkpoint file's metadata.
private func savedStep(_ url: URL) throws -> Int? {
  let header = try safetensorsHeader(Data(contentsOf: url)).header
  return ((header["__metadata__"] as? [String: String])?["step"]).flatMap { Int($0) }
}

/// Multiplies every f32 value of the tensors whose names start with `prefix` by `factor`, and
/// writes the file anew under a temporary name renamed over it (a new inode, as the tool's own
/// saves, so that hard links to the old file keep its bytes).
private func scaleTensors(_ url: URL, prefix: String, by factor: Float) throws {
  var data = try Data(contentsOf: url)
  let (header, start) = try safetensorsHeader(data)
  var scaled = 0
  for (name, value) in header where name.hasPrefix(prefix) {
    let info = try #require(value as? [String: Any])
    #expect(info["dtype"] as? String == "F32")
    let offsets = try #require(info["data_offsets"] as? [Int])
    data.withUnsafeMutableBytes { raw in
      for o in stride(from: start + offsets[0], to: start + offsets[1], by: 4) {
        let v = raw.loadUnaligned(fromByteOffset: o, as: Float.self) * factor
        raw.storeBytes(of: v, toByteOffset: o, as: Float.self)
      }
    }
    scaled += 1
  }
  #expect(scaled > 0, "no tensor named \(prefix)...")
  let temporary = url.deletingLastPathComponent().appendingPathComponent("scaled.tmp")
  try data.write(to: temporary)
  #expect(rename(temporary.path, url.path) == 0)
}

/// The step and eval_dice_score of each evaluation the console printed, in order.
private func evaluations(_ output: String) -> [(step: Int, dice: Double)] {
  output.split(separator: "\n").filter { $0.contains("evaluation at step") }.compactMap { line in
    let words = line.split(separator: " ")
    guard let i = words.firstIndex(of: "step"), let d = words.firstIndex(of: "eval_dice_score"),
          let step = Int(words[i + 1]), let dice = Double(words[d + 1].trimmingCharacters(in: .punctuationCharacters)) else { return nil }
    return (step, dice)
  }
}

/// The id of a process that has ended.
private func deadProcessID() throws -> pid_t {
  let done = Process()
  done.executableURL = URL(fileURLWithPath: "/bin/true")
  try done.run()
  done.waitUntilExit()
  return done.processIdentifier
}

// MARK: - The best checkpoint across a resume

@Suite struct BestCheckpointResumeCLITests {
  @Test func aResumedRunKeepsTheEarlierBestUntilAnEvaluationBeatsIt() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model")
    let common = ["--evaluate-every", "2", "--keep-checkpoints", "3", "--workers", "0", "--model-dir", model.path] + tinyModel
    let first = try unet(["train", "--max-steps", "4", "--learning-rate", "1e-2"] + common)
    #expect(first.status == 0, "\(first.output)")
    let earlier = evaluations(first.output)
    let best = try earlier.dropFirst().reduce(#require(earlier.first)) { $1.dice > $0.dice ? $1 : $0 }
    let bestCopy = model.appendingPathComponent("checkpoint-best.safetensors")
    #expect(try savedStep(bestCopy) == best.step, "\(first.output)")

    // The latest checkpoint's head turned around and sharpened: the resumed model predicts the
    // other class with confidence, so its first evaluation is worse than the earlier best.
    try scaleTensors(model.appendingPathComponent("checkpoint.safetensors"), prefix: "head", by: -10)
    let resumed = try unet(["train", "--max-steps", "6", "--learning-rate", "1e-7", "--resume-training"] + common)
    #expect(resumed.status == 0, "\(resumed.output)")
    let later = evaluations(resumed.output)
    #expect(later.map(\.step) == [6], "\(resumed.output)")
    try #require(later.allSatisfy { $0.dice < best.dice }, "the resumed evaluations \(later) should be worse than \(best)\n\(resumed.output)")
    #expect(try savedStep(bestCopy) == best.step, "the best copy was replaced by a worse save\n\(resumed.output)")
    #expect(resumed.output.contains(String(format: "%.4f", best.dice)) && resumed.output.contains("checkpoint-best"), "\(resumed.output)")
  }
}

// MARK: - A signal's save is a checkpoint like any other

@Suite struct SignalSaveCLITests {
  @Test func aSIGTERMSaveKeepsItsStepNumberedCopy() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model"), log = root.appendingPathComponent("out.txt")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let process = Process()
    process.executableURL = unetBinary
    process.arguments = ["train", "--exec-mode", "train", "--max-steps", "100000", "--log-every", "1", "--keep-checkpoints", "2",
                         "--workers", "0", "--model-dir", model.path] + tinyModel
    let handle = try FileHandle(forWritingTo: log)
    (process.standardOutput, process.standardError) = (handle, handle)
    try process.run()
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline, !((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("step 2:") { usleep(50_000) }
    process.terminate()
    process.waitUntilExit()
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    #expect(process.terminationStatus == 143, "\(output)")
    let words = output.split(whereSeparator: \.isWhitespace)
    let after = try #require(words.firstIndex(of: "SIGTERM"), "\(output)")
    let step = try #require(Int(words[after + 3].trimmingCharacters(in: .punctuationCharacters)), "\(output)")
    let copy = model.appendingPathComponent("checkpoint-\(step).safetensors")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: model.path)) ?? []
    #expect(FileManager.default.fileExists(atPath: copy.path), "\(names)\n\(output)")
    #expect(try savedStep(copy) == step)
  }
}

// MARK: - Temporary files of dead runs

@Suite struct StaleTemporariesCLITests {
  @Test func everyTemporaryOfOursIsRemovedWhenNoRunHoldsTheFolder() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let dead = try deadProcessID()
    // A run that died while saving, one whose id now belongs to a live process that is no run of
    // ours (this one), and the copies --keep-checkpoints puts in place.
    let ours = [".checkpoint.safetensors.tmp-\(dead)-1", ".checkpoint.safetensors.tmp-\(getpid())-2",
                ".checkpoint-best.safetensors.tmp-\(dead)-3", ".checkpoint-12.safetensors.tmp-\(dead)-4"]
    let theirs = [".checkpoint.safetensors.tmp-notes", "checkpoint.safetensors.tmp-\(dead)-5", ".other.tmp-\(dead)-6"]
    for name in ours + theirs { try Data("partial".utf8).write(to: root.appendingPathComponent(name)) }
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "1", "--workers", "0", "--model-dir", root.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    let left = Set(try FileManager.default.contentsOfDirectory(atPath: root.path))
    #expect(left.isDisjoint(with: ours), "\(left)\n\(r.output)")
    #expect(left.isSuperset(of: theirs), "\(left)\n\(r.output)")
    for name in ours { #expect(r.output.contains("removed \(root.appendingPathComponent(name).path)"), "\(r.output)") }
  }

  @Test func aFolderAnotherRunHoldsIsRefusedAndItsTemporariesKept() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    // This process holds the folder's lock, as a training run does while it writes there.
    let lock = root.appendingPathComponent(".unet-train.lock")
    let fd = open(lock.path, O_RDWR | O_CREAT, 0o644)
    try #require(fd >= 0)
    defer { close(fd) }
    try #require(flock(fd, LOCK_EX | LOCK_NB) == 0)
    _ = "\(getpid())\n".withCString { write(fd, $0, strlen($0)) }
    let temporary = root.appendingPathComponent(".checkpoint.safetensors.tmp-\(try deadProcessID())-7")
    try Data("being written".utf8).write(to: temporary)
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "1", "--workers", "0", "--model-dir", root.path] + tinyModel)
    #expect(r.status != 0 && r.output.contains("--model-dir") && r.output.contains("another") && r.output.contains("\(getpid())"),
            "\(r.output)")
    #expect(FileManager.default.fileExists(atPath: temporary.path), "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("checkpoint.safetensors").path))
  }

  @Test func theLockIsGoneAfterARun() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let r = try unet(["train", "--exec-mode", "train", "--max-steps", "1", "--workers", "0", "--model-dir", root.path] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    #expect(Set(try FileManager.default.contentsOfDirectory(atPath: root.path)) == ["checkpoint.safetensors"])
  }
}
