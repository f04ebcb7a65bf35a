import Foundation
import SegCore
import SegNN
import SegTrain
import Testing

@testable import SegCUDA

// MARK: - The host's cost per device op

/// The full-size training step (572x572, depth 4, 64 filters, batch 8, fp16 with loss scaling) on
/// the null device: every kernel is recorded (its handle looked up and its parameter block packed,
/// as for a GPU launch) and nothing runs, so the step's wall time is the host's own: building the
/// graph, the gradient walk, the kernel table, the backend's launch code. Divided by the device
/// ops the step queues (launches, cuDNN calls, copies, fills, uploads, downloads) it is the host
/// microseconds per op, which the GPU's step cannot go below. Writes JSON (to the path in
/// UNET_HOST_DISPATCH_JSON, else the temporary folder). A benchmark, not a speed test: it asserts
/// only that it measured.
@Suite struct HostDispatchBenchmark {
  @Test func hostMicrosecondsPerOpOfTheFullSizeStep() throws {
    let device = RecordingDevice(wrapping: nil, recordsNames: false)
    let (trainer, images, targets) = try StepCount.setUp(config: UNetConfig(), batch: 8, computeType: .f16, device: device)
    _ = try trainer.step(images: images, targets: targets)
    var times: [Double] = []
    var ops = 0
    for _ in 0..<5 {
      device.reset()
      let start = DispatchTime.now().uptimeNanoseconds
      _ = try trainer.step(images: images, targets: targets)
      times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
      let c = device.counts
      ops = c.launches + c.libraryCalls + c.copies + c.fills + c.uploads + c.downloads
    }
    let c = device.counts
    let median = times.sorted()[times.count / 2]
    let result: [String: Any] = [
      "benchmark": "host dispatch, null device", "step": "572x572 depth 4 64 filters batch 8 fp16",
      "ops_per_step": ops, "launches": c.launches, "cudnn_calls": c.libraryCalls, "copies": c.copies, "uploads": c.uploads,
      "downloads": c.downloads, "step_us_median": median.rounded(), "step_us": times.map { $0.rounded() },
      "host_us_per_op": (median / Double(ops) * 100).rounded() / 100, "isa": Self.isa, "load_average": Self.load,
    ]
    let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
    let path = ProcessInfo.processInfo.environment["UNET_HOST_DISPATCH_JSON"]
      ?? FileManager.default.temporaryDirectory.appendingPathComponent("unet-host-dispatch.json").path
    try json.write(to: URL(fileURLWithPath: path))
    print("host dispatch (\(path)): \(String(decoding: json, as: UTF8.self))")
    #expect(ops > 0 && median > 0)
  }

  /// The machine and its best vector extension, from /proc/cpuinfo.
  static var isa: String {
    #if arch(x86_64)
      let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
      return "x86_64 " + (["avx512f", "avx2", "avx", "sse4_2"].first(where: flags.contains) ?? "baseline")
    #else
      return "aarch64"
    #endif
  }

  /// The 1-minute load average when it ran.
  static var load: String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "unknown"
  }
}
