import ArgumentParser
import Foundation
import SegCPU
import SegCUDA
import SegCheck
import SegCore

/// `unet doctor`: which CUDA components this machine has, where, and how to install what is
/// missing; exits 0 only when the CUDA backend can run here. With `--check`, also checks the
/// backend against the CPU (every op, a short training run) and measures the GPU's ceilings.
struct DoctorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "doctor",
    abstract: "Check the CUDA driver, GPU, NVRTC, cuBLAS and cuDNN (exit status 0 only with a usable GPU).",
    discussion: """
      Libraries are looked for in UNET_CUDA_PATH, the dynamic loader's path, /usr/local/cuda*/lib64, the \
      system library folders, then pip's nvidia-* packages of every python3 on PATH. With a GPU, every kernel \
      is compiled for it (cached in ~/.cache/unetseg/cubin) and one is run and checked.

      --check then runs every op forward and backward on the GPU and on the CPU backend (seeded random inputs, \
      several shapes, f32, f16, bf16 and f64) and compares them within one per-dtype tolerance table, trains a \
      tiny U-Net for a few steps on both and compares the losses, and measures the GPU's copy bandwidth and \
      cuBLAS matrix-product throughput. The exit status is non-zero on any failure. `--check --device cpu` \
      checks the CPU backend against the reference backend the same way (no GPU needed).
      """)

  @Flag(help: "Check the backend against the CPU (every op, a training run) and measure the GPU's ceilings.")
  var check = false

  @Option(help: "With --check: the backend to check: cuda, cuda:N, or cpu (against the reference backend).")
  var device = DeviceChoice(.cuda(0))

  @Option(help: "With --check: write the whole report as JSON to this file.")
  var output: String?

  @Flag(help: "With --check: run f32 convolutions on TF32 Tensor Cores (as --precision tf32) and judge them by TF32's tolerance.")
  var tf32 = false

  @Option(help: .hidden)
  var trainingSteps = TrainingComparison.Options().steps

  @Flag(help: .hidden)
  var skipCeilings = false

  func validate() throws {
    guard check || (output == nil && !tf32) else { throw ValidationError("--output and --tf32 go with --check") }
    if case .reference = device.kind {
      throw ValidationError("--device reference: the reference backend is the baseline; check cpu or cuda")
    }
    guard trainingSteps >= 1 else { throw ValidationError("--training-steps must be at least 1") }
  }

  func run() throws {
    let options = try CUDAOptions(environment: ProcessInfo.processInfo.environment)
    let report = DoctorReport.collect(options: options)
    print(report.text)
    guard check else {
      if !report.usable { throw ExitCode.failure }
      return
    }
    print("")
    var result = CheckResult(doctor: report, device: device.description)
    defer { write(result) }
    do {
      try runChecks(report, options, &result)
    } catch {
      result.errors.append("\(error)")
      print("unet doctor --check: \(error)")
    }
    print(result.passed ? "\nCheck passed." : "\nCheck FAILED.")
    if !result.passed { throw ExitCode.failure }
  }

  /// The conformance, the training comparison and (on a GPU) the ceilings, printed as they finish.
  func runChecks(_ report: DoctorReport, _ cudaOptions: CUDAOptions, _ result: inout CheckResult) throws {
    var options = OpConformance.Options()
    var training = tf32 ? TrainingComparison.Options.tf32() : TrainingComparison.Options()
    training.steps = trainingSteps
    options.tf32 = tf32
    let candidate: any Backend, baseline: any Backend
    var context: CUDAContext? = nil
    switch device.kind {
    case .cpu:
      // The CPU backend computes in f32: checked against the reference backend.
      (candidate, baseline) = (CPUBackend.shared, ReferenceBackend.shared)
      options.dtypes = [.f32]
    case .cuda(let n):
      guard report.usable else { throw CUDAError(.noDevice, "no usable GPU (see above): nothing to check") }
      let gpu = try CUDABackend.gpu(ordinal: n, tensorFloat32: tf32, options: cudaOptions)
      (candidate, baseline) = (gpu, CPUBackend.shared)
      context = (gpu.device as? GPUKernelDevice)?.context
    case .reference:
      throw ValidationError("--device reference: the reference backend is the baseline")
    }

    let conformance = OpConformance.run(candidate: candidate, baseline: baseline, options: options)
    result.conformance = conformance
    print(conformance.text + "\n")

    let run = TrainingComparison.run(candidate: candidate, baseline: baseline, options: training)
    result.training = run
    print(run.text + "\n")

    if let context {
      // The allocator and staging: chunked round trip, reuse, and an impossible allocation that
      // must give the out-of-memory error (naming the bytes, suggesting a smaller batch).
      do {
        let line = try context.checkMemory()
        result.memory = line
        print("Device \(line)\n")
      } catch {
        result.errors.append("memory check: \(error)")
        print("Memory check FAILED: \(error)\n")
      }
    }

    if let context, !skipCeilings {
      let ceilings = Ceilings.measure(context: context)
      result.ceilings = ceilings
      print(ceilings.text)
    }
  }

  /// Writes `result` to `--output`, if given.
  func write(_ result: CheckResult) {
    guard let output else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    do {
      try encoder.encode(result).write(to: URL(fileURLWithPath: output))
      print("Wrote \(output).")
    } catch {
      print("unet doctor --check: could not write \(output): \(error)")
    }
  }
}

// MARK: - The JSON report

/// Everything `unet doctor --check` found, as written by `--output`.
struct CheckResult: Encodable {
  struct Item: Encodable {
    let component: String
    let state: String
    let detail: String
  }

  let doctor: [Item]
  let usable: Bool
  /// The checked backend: "cuda", "cuda:N" or "cpu".
  let device: String
  var conformance: ConformanceReport?
  var training: TrainingReport?
  var ceilings: Ceilings?
  /// The device memory check's summary (GPU only).
  var memory: String?
  /// cuDNN's JSON description of the GPU, the fixture for building its plans without it (GPU only).
  let cudnnDevice: String?
  /// What stopped the checks early, or failed outside the tables.
  var errors: [String] = []

  init(doctor report: DoctorReport, device: String) {
    doctor = report.items.map { Item(component: $0.component, state: $0.state.rawValue, detail: $0.detail) }
    usable = report.usable
    self.device = device
    cudnnDevice = report.cudnnDevice
  }

  /// Every part that ran passed, and the conformance and training ran.
  var passed: Bool {
    errors.isEmpty && (conformance?.passed ?? false) && (training?.passed ?? false) && (ceilings?.errors.isEmpty ?? true)
  }

  enum CodingKeys: String, CodingKey { case doctor, usable, device, cudnnDevice, conformance, training, memory, ceilings, errors, passed }

  func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(doctor, forKey: .doctor)
    try c.encode(usable, forKey: .usable)
    try c.encode(device, forKey: .device)
    try c.encodeIfPresent(cudnnDevice, forKey: .cudnnDevice)
    try c.encodeIfPresent(conformance, forKey: .conformance)
    try c.encodeIfPresent(training, forKey: .training)
    try c.encodeIfPresent(memory, forKey: .memory)
    try c.encodeIfPresent(ceilings, forKey: .ceilings)
    try c.encode(errors, forKey: .errors)
    try c.encode(passed, forKey: .passed)
  }
}
