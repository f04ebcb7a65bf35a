import Foundation
import SegCore
import SegTrain
import Testing

// MARK: - Running under mpirun

/// mpirun and the `unet` built beside the tests.
enum MPIRun {
  /// Open MPI's mpirun on PATH, if any.
  static let mpirun: String? = {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    return folders.map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }()

  static let missing: String? = mpirun == nil
    ? "mpirun not on PATH: `apt-get install openmpi-bin libopenmpi-dev` (scripts/setup.sh installs them)" : nil

  static let unet: URL = {
    var dir = Bundle.main.bundleURL
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") { dir = bundle.bundleURL.deletingLastPathComponent() }
    return dir.appendingPathComponent("unet")
  }()

  /// Runs `executable` with `arguments`, ended after `timeout` seconds: exit status, stdout and
  /// stderr, the seconds it took and whether it had to be ended.
  static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:], timeout: Double = 300)
    throws -> (status: Int32, output: String, seconds: Double, timedOut: Bool)
  {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    // CI runs as root; Open MPI refuses that unless told twice.
    p.environment = ProcessInfo.processInfo.environment.merging(
      ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"].merging(extra) { $1 }) { $1 }
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("mpirun-\(UUID().uuidString).log")
    FileManager.default.createFile(atPath: file.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: file) }
    let handle = try FileHandle(forWritingTo: file)
    (p.standardOutput, p.standardError) = (handle, handle)
    let start = Date()
    try p.run()
    var timedOut = false
    while p.isRunning {
      if Date().timeIntervalSince(start) > timeout {
        timedOut = true
        p.terminate()
        Thread.sleep(forTimeInterval: 2)
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        break
      }
      Thread.sleep(forTimeInterval: 0.2)
    }
    p.waitUntilExit()
    try handle.close()
    let output = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    return (p.terminationStatus, output, Date().timeIntervalSince(start), timedOut)
  }

  /// `unet arguments` on `ranks` processes.
  static func unet(ranks: Int, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300)
    throws -> (status: Int32, output: String, seconds: Double, timedOut: Bool)
  {
    try run(mpirun!, ["-np", "\(ranks)", "--oversubscribe", unet.path] + arguments, environment: environment, timeout: timeout)
  }

  static func folder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("unet-mpi-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }
}

/// A tiny U-Net without dropout (so that two ranks of batch 1 are one process of batch 2).
let tinyModel = ["--padding", "same", "--depth", "2", "--base-filters", "4", "--input-size", "32", "--dropout", "0", "--workers", "0"]

// MARK: - Tests

@Suite(.serialized, .enabled(if: MPIRun.missing == nil, Comment(rawValue: MPIRun.missing ?? "")))
struct MPIRunTests {
  /// Two ranks of batch 1 for 10 steps end with the weights of one process of batch 2 on the same
  /// samples (within 1e-5 relative), hold identical weights after every step, and a third run
  /// resumes their checkpoint with one rank.
  @Test func twoRanksTrainAsOneProcessOfTheirCombinedBatch() throws {
    let root = try MPIRun.folder()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path
    let synth = try MPIRun.run(MPIRun.unet.path, ["data", "synth", "--output", data, "--size", "48", "--train-count", "6", "--test-count", "1"])
    try #require(synth.status == 0, "\(synth.output)")
    let common = ["train", "--exec-mode", "train", "--data-dir", data, "--max-steps", "10", "--log-every", "1",
                  "--learning-rate", "1e-3"] + tinyModel

    let two = try MPIRun.unet(ranks: 2, common + ["--batch-size", "1", "--model-dir", root.appendingPathComponent("two").path],
                              environment: ["UNET_REPLICA_CHECK_EVERY": "1"])
    try #require(two.status == 0 && !two.timedOut, "\(two.output)")
    #expect(two.output.contains("effective batch 2 x 1 = 2"), "\(two.output)")
    // Open MPI provides MPI_THREAD_SERIALIZED: the buckets are reduced on the communication thread.
    #expect(two.output.contains("gradients by MPI all-reduce on a communication thread"), "\(two.output)")
    for step in 1...10 { #expect(two.output.contains("weights identical on 2 ranks after step \(step) "), "step \(step):\n\(two.output)") }
    #expect(two.output.components(separatedBy: "step 10: train_ce_loss").count == 2, "only rank 0 logs:\n\(two.output)")

    let one = try MPIRun.run(MPIRun.unet.path, common + ["--batch-size", "2", "--model-dir", root.appendingPathComponent("one").path])
    try #require(one.status == 0, "\(one.output)")

    let a = try Checkpoint.load(from: root.appendingPathComponent("two/checkpoint.safetensors"))
    let b = try Checkpoint.load(from: root.appendingPathComponent("one/checkpoint.safetensors"))
    #expect(a.step == 10 && b.step == 10)
    #expect(Set(a.weights.keys) == Set(b.weights.keys) && !a.weights.isEmpty)
    var worst = 0.0
    for (name, wa) in a.weights {
      let x = wa.floats, y = try #require(b.weights[name]).floats
      let diff = zip(x, y).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
      let norm = y.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
      worst = max(worst, diff / max(norm, 1e-30))
    }
    #expect(worst <= 1e-5, "the largest relative difference of a weight tensor is \(worst)")
    // The weights moved: the comparison is not of two untrained models.
    let initial = try MPIRun.run(MPIRun.unet.path, common + ["--max-steps", "1", "--learning-rate", "1e-30", "--batch-size", "2",
                                                              "--model-dir", root.appendingPathComponent("initial").path])
    try #require(initial.status == 0, "\(initial.output)")
    let c = try Checkpoint.load(from: root.appendingPathComponent("initial/checkpoint.safetensors"))
    #expect(c.weights.contains { name, w in w.floats != b.weights[name]!.floats })

    // Two ranks share the evaluation's images and report what one process reports.
    let evalArgs = ["evaluate", "--data-dir", data, "--model-dir", root.appendingPathComponent("one").path]
    let evalTwo = try MPIRun.unet(ranks: 2, evalArgs + ["--output", root.appendingPathComponent("two.json").path])
    let evalOne = try MPIRun.run(MPIRun.unet.path, evalArgs + ["--output", root.appendingPathComponent("one.json").path])
    try #require(evalTwo.status == 0 && evalOne.status == 0, "\(evalTwo.output)\n\(evalOne.output)")
    #expect(try Data(contentsOf: root.appendingPathComponent("two.json")) == Data(contentsOf: root.appendingPathComponent("one.json")))

    // The two ranks' checkpoint resumes on one process.
    let resumed = try MPIRun.run(MPIRun.unet.path, common.map { $0 == "10" ? "12" : $0 }
      + ["--batch-size", "2", "--resume-training", "--model-dir", root.appendingPathComponent("two").path])
    #expect(resumed.status == 0 && resumed.output.contains("(step 10)") && resumed.output.contains("step 12: train_ce_loss"), "\(resumed.output)")
  }

  /// A rank that fails on a bad file ends the whole job quickly, non-zero, naming the rank and the
  /// file, while the other rank waits in a collective.
  @Test func aRankFailingOnABadFileEndsTheJob() throws {
    let root = try MPIRun.folder()
    defer { try? FileManager.default.removeItem(at: root) }
    let good = root.appendingPathComponent("good").path
    let synth = try MPIRun.run(MPIRun.unet.path, ["data", "synth", "--output", good, "--size", "48", "--train-count", "4", "--test-count", "1"])
    try #require(synth.status == 0, "\(synth.output)")
    // A folder data set whose one image is not a PNG.
    let bad = root.appendingPathComponent("bad")
    for sub in ["images", "masks"] {
      try FileManager.default.createDirectory(at: bad.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    try Data("not a PNG at all".utf8).write(to: bad.appendingPathComponent("images/slice-0.png"))
    try Data("not a PNG at all".utf8).write(to: bad.appendingPathComponent("masks/slice-0.png"))
    let args = ["train", "--exec-mode", "train", "--max-steps", "50"] + tinyModel
    // Rank 0 reads the good set and waits for rank 1 at the weights' broadcast; rank 1 fails.
    let result = try MPIRun.run(MPIRun.mpirun!, [
      "--oversubscribe", "-np", "1", MPIRun.unet.path] + args + ["--data-dir", good, ":", "-np", "1", MPIRun.unet.path] + args
      + ["--data-dir", bad.path], timeout: 120)
    #expect(!result.timedOut, "the job was still running after 120 s:\n\(result.output)")
    #expect(result.status != 0)
    #expect(result.seconds < 60, "the job took \(result.seconds) s to end")
    #expect(result.output.contains("[rank 1 of 2]") && result.output.contains("slice-0.png"), "\(result.output)")
  }
}

// MARK: - A killed rank

@Suite(.serialized, .enabled(if: MPIRun.missing == nil, Comment(rawValue: MPIRun.missing ?? "")))
struct MPIKilledRankTests {
  /// The processes of `parent`'s tree whose environment says they are rank `rank`.
  static func rankProcess(_ rank: Int, under parent: Int32) -> Int32? {
    let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    func parentOf(_ pid: Int32) -> Int32? {
      guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")") else { return nil }
      return stat[stat.index(after: close)...].split(separator: " ").dropFirst().first.flatMap { Int32($0) }
    }
    func descends(_ pid: Int32) -> Bool {
      var p = pid
      for _ in 0..<8 {
        guard let q = parentOf(p) else { return false }
        if q == parent { return true }
        p = q
      }
      return false
    }
    return pids.first { pid in
      guard descends(pid), let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
      return env.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "OMPI_COMM_WORLD_RANK=\(rank)" }
        && ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").hasPrefix("unet")
    }
  }

  /// SIGKILL to rank 1 in the middle of training ends the job within seconds, non-zero, and the
  /// checkpoint rank 0 saved last is whole.
  @Test func aKilledRankEndsTheJob() throws {
    let root = try MPIRun.folder()
    defer { try? FileManager.default.removeItem(at: root) }
    let model = root.appendingPathComponent("model")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: MPIRun.mpirun!)
    p.arguments = ["-np", "2", "--oversubscribe", MPIRun.unet.path, "train", "--exec-mode", "train", "--max-steps", "100000",
                   "--checkpoint-every", "1", "--model-dir", model.path] + tinyModel
    p.environment = ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
    let log = root.appendingPathComponent("log")
    FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    (p.standardOutput, p.standardError) = (handle, handle)
    try p.run()
    defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    // Wait for a saved checkpoint, then for rank 1.
    let checkpoint = model.appendingPathComponent("checkpoint.safetensors")
    let start = Date()
    while !FileManager.default.fileExists(atPath: checkpoint.path), p.isRunning, Date().timeIntervalSince(start) < 240 {
      Thread.sleep(forTimeInterval: 0.2)
    }
    try #require(p.isRunning, "the job ended before a checkpoint was saved: \(String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self))")
    let victim = try #require(Self.rankProcess(1, under: p.processIdentifier), "rank 1's process not found")
    kill(victim, SIGKILL)
    let killed = Date()
    while p.isRunning, Date().timeIntervalSince(killed) < 60 { Thread.sleep(forTimeInterval: 0.1) }
    let output = String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)
    #expect(!p.isRunning, "the job still ran 60 s after rank 1 was killed:\n\(output)")
    p.waitUntilExit()
    #expect(p.terminationStatus != 0)
    #expect(Date().timeIntervalSince(killed) < 30, "the job took \(Date().timeIntervalSince(killed)) s to end")
    let saved = try Checkpoint.load(from: checkpoint)
    #expect(saved.step >= 1, "\(output)")
  }
}
