import Foundation
import Testing

// MARK: - unet benchmark

@Suite(.serialized) struct BenchmarkCLITests {
  @Test(arguments: ["train", "predict"]) func benchmarkWritesTheNumbers(mode: String) throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let output = root.appendingPathComponent("result.json"), log = root.appendingPathComponent("log.json")
    let r = try unet(["benchmark", "--mode", mode, "--batch-size", "2", "--warmup-steps", "1", "--max-steps", "3",
                      "--output", output.path, "--log-dir", log.path, "--profile"] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.contains("throughput") && r.output.contains("op kind") && r.output.contains("op and output type"), "\(r.output)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any])
    for key in ["throughput", "throughput_overall", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms",
                "latency_p99_ms", "gflops_per_s", "peak_rss_mb"] {
      let value = json[key] as? Double
      #expect(value.map { $0 > 0 } == true, "\(key): \(String(describing: json[key]))")
    }
    let config = try #require(json["config"] as? [String: Any])
    #expect(config["batch_size"] as? Int == 2 && config["input_size"] as? Int == 32 && config["precision"] as? String == "fp32")
    // --max-steps 3 includes the --warmup-steps 1 (the reference's rule): 2 timed steps.
    #expect((json["step_seconds"] as? [Any])?.count == 2)
    let tag = mode == "train" ? "train" : "test"
    let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
    #expect(lines.contains { $0.hasPrefix("DLLL {") && $0.contains("\"throughput_\(tag)\"") && $0.contains("\"latency_\(tag)_99\"") })
  }

  /// oneDNN's OpenMP threads sleep between primitives unless the user says otherwise: the
  /// process runs with OMP_WAIT_POLICY=PASSIVE when the variable is not set, and keeps a value
  /// that is; the benchmark's JSON says which.
  @Test(arguments: [nil, "ACTIVE"]) func openMPWaitsPassivelyUnlessTold(policy: String?) throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let output = root.appendingPathComponent("result.json")
    let process = Process()
    process.executableURL = unetBinary
    process.arguments = ["benchmark", "--mode", "predict", "--warmup-steps", "1", "--max-steps", "2", "--output", output.path] + tinyModel
    var environment = ProcessInfo.processInfo.environment
    environment["OMP_WAIT_POLICY"] = policy
    process.environment = environment
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any])
    let config = try #require(json["config"] as? [String: Any])
    #expect(config["omp_wait_policy"] as? String == policy ?? "PASSIVE")
  }

  @Test func trainBenchmarkFlagRunsTheBenchmark() throws {
    let r = try unet(["train", "--benchmark", "--exec-mode", "predict", "--warmup-steps", "1", "--max-steps", "2"] + tinyModel)
    #expect(r.status == 0, "\(r.output)")
    #expect(r.output.contains("benchmark predict") && r.output.contains("throughput"), "\(r.output)")
  }

  @Test func xlaCompilesTheStepAndSaysSo() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unet-xla-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let json = dir.appendingPathComponent("b.json"), graphs = dir.appendingPathComponent("graphs")
    for (mode, flag) in [("train", "--xla"), ("predict", "--compile")] {
      let r = try unet(["benchmark", "--mode", mode, flag, "--warmup-steps", "1", "--max-steps", "3", "--dump-graph", graphs.path,
                        "--output", json.path] + tinyModel)
      #expect(r.status == 0 && r.output.contains("compiled"), "\(r.output)")
      let text = try String(contentsOf: json, encoding: .utf8)
      #expect(text.contains("\"compiled\" : true"), "\(text)")
    }
    let files = try FileManager.default.contentsOfDirectory(atPath: graphs.path)
    // Stages: trace, step-scalars, dead-values, fuse-skip-gradient, fuse-elementwise, recompute, concat-in-place,
    // in-place, memory-plan, memory-check.
    #expect(files.contains("gradients-1-00-trace.txt") && files.contains("update-1-09-memory-check.txt") && files.contains("predict-1-08-memory-plan.txt")
      && files.contains("gradients-1-03-fuse-skip-gradient.txt") && files.contains("gradients-1-05-recompute.txt")
      && files.contains("gradients-1-06-concat-in-place.txt") && files.contains("gradients-1-07-in-place.txt")
      && files.contains("gradients-1-04-fuse-elementwise.txt"), "\(files)")
    let eager = try unet(["benchmark", "--warmup-steps", "1", "--max-steps", "2", "--output", json.path] + tinyModel)
    #expect(eager.status == 0)
    #expect(try String(contentsOf: json, encoding: .utf8).contains("\"compiled\" : false"))
  }

  @Test func badValuesNameTheFlag() throws {
    let mode = try unet(["benchmark", "--mode", "other"] + tinyModel)
    #expect(mode.status != 0 && mode.output.contains("--mode"), "\(mode.output)")
    let steps = try unet(["benchmark", "--max-steps", "0"] + tinyModel)
    #expect(steps.status != 0 && steps.output.contains("--max-steps"), "\(steps.output)")
    let warmup = try unet(["benchmark", "--warmup-steps", "-1"] + tinyModel)
    #expect(warmup.status != 0 && warmup.output.contains("--warmup-steps"), "\(warmup.output)")
    let dump = try unet(["benchmark", "--dump-graph", "/tmp"] + tinyModel)
    #expect(dump.status != 0 && dump.output.contains("--dump-graph") && dump.output.contains("--xla"), "\(dump.output)")
    // evaluate compiles with --xla (CompiledCLITests); its --dump-graph still needs it.
    let evaluate = try unet(["evaluate", "--dump-graph", "/tmp"])
    #expect(evaluate.status != 0 && evaluate.output.contains("--dump-graph") && evaluate.output.contains("--xla"), "\(evaluate.output)")
    let batches = try unet(["benchmark", "pipeline", "--batches", "0"])
    #expect(batches.status != 0 && batches.output.contains("--batches"), "\(batches.output)")
  }

  @Test func theStepIsTheDefaultAndKernelsAndPipelineAreModes() throws {
    let help = try unet(["benchmark", "--help"]).output
    #expect(help.contains("step (default)") && help.contains("kernels") && help.contains("pipeline"), "\(help)")
    let explicit = try unet(["benchmark", "step", "--mode", "predict", "--warmup-steps", "1", "--max-steps", "2"] + tinyModel)
    #expect(explicit.status == 0 && explicit.output.contains("benchmark predict"), "\(explicit.output)")
    #expect(try unet(["benchmark", "kernels", "--help"]).output.contains("--repeats"))
    #expect(try unet(["benchmark", "pipeline", "--help"]).output.contains("--workers"))
    // Each mode takes its own flags.
    let repeats = try unet(["benchmark", "--repeats", "2"])
    #expect(repeats.status != 0 && repeats.output.contains("--repeats does not apply to unet benchmark step")
      && repeats.output.contains("unet benchmark kernels"), "\(repeats.output)")
    let mode = try unet(["benchmark", "kernels", "--mode", "train"])
    #expect(mode.status != 0 && mode.output.contains("--mode does not apply to unet benchmark kernels"), "\(mode.output)")
  }
}
