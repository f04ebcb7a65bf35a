import Foundation
import Testing

// MARK: - unet doctor

@Suite struct DoctorCLITests {
  /// Without a GPU (CI), doctor names what is missing and exits non-zero; with one, it exits 0
  /// only after running a kernel.
  @Test func doctorReportsAndExitsByVerdict() throws {
    var dir = Bundle.main.bundleURL
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      dir = bundle.bundleURL.deletingLastPathComponent()
    }
    let process = Process()
    process.executableURL = dir.appendingPathComponent("unet")
    process.arguments = ["doctor"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    for component in ["driver", "NVRTC", "cuBLAS", "cuDNN"] { #expect(output.contains("  \(component) ")) }
    if process.terminationStatus == 0 {
      #expect(output.contains("Ready: --device cuda will run on"))
      #expect(output.contains("matches the CPU exactly"))
    } else {
      #expect(process.terminationStatus == 1)
      #expect(output.contains("Not usable ("), "\(output)")
      #expect(output.contains("missing") || output.contains("failed"))
      #expect(output.contains("To install:") || output.contains("nvidia-smi"), "says how to fix it: \(output)")
    }
  }
}

// MARK: - unet doctor --check --device cpu

@Suite struct DoctorCheckCLITests {
  /// The built `unet` next to the test bundle.
  static var unet: URL {
    var dir = Bundle.main.bundleURL
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      dir = bundle.bundleURL.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("unet")
  }

  /// The whole --check path without a GPU: the CPU backend against the reference, every op and a
  /// short training run, tables on stdout and everything in the JSON.
  @Test func checkOnTheCPUPassesAndWritesJSON() throws {
    let json = FileManager.default.temporaryDirectory.appendingPathComponent("doctor-check-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: json) }
    let process = Process()
    process.executableURL = Self.unet
    process.arguments = ["doctor", "--check", "--device", "cpu", "--training-steps", "2", "--output", json.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(output)")
    #expect(output.contains("Op conformance: cpu against reference"))
    #expect(output.contains("comparisons passed"))
    #expect(output.contains("Losses track"))
    #expect(output.contains("Check passed."))

    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
    #expect(object?["passed"] as? Bool == true)
    #expect(object?["device"] as? String == "cpu")
    let conformance = object?["conformance"] as? [String: Any]
    let rows = conformance?["rows"] as? [[String: Any]] ?? []
    #expect(Set(rows.compactMap { $0["op"] as? String }).count == 36, "every op kind (36, adamUpdate, multiTensorAdam, fusedElementwise, cropConcatBackward and skipGradient included)")
    #expect(rows.allSatisfy { $0["passed"] as? Bool == true })
    let training = object?["training"] as? [String: Any]
    #expect((training?["candidateLosses"] as? [Double])?.count == 2)
    #expect((training?["baselineLosses"] as? [Double])?.count == 2)
    #expect(object?["ceilings"] == nil, "no GPU ceilings on the CPU")
  }

  @Test func checkOptionsNeedCheck() throws {
    let process = Process()
    process.executableURL = Self.unet
    process.arguments = ["doctor", "--output", "x.json"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus != 0)
    #expect(output.contains("--output and --tf32 go with --check"), "\(output)")
  }
}
