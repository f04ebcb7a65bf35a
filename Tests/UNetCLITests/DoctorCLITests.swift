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
