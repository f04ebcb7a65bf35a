import Foundation
import Testing

// MARK: - The same steps in PyTorch

/// The Python with torch that the golden comparison runs: UNET_TORCH_PYTHON when set (e.g.
/// ~/.cache/unetseg/bench-venv/bin/python, which bench/real_data.py makes), else the tests' Python
/// (UNET_PYTHON, the repository's .venv, python3 on PATH).
let torchPython: [String] = {
  let environment = ProcessInfo.processInfo.environment
  for name in ["UNET_TORCH_PYTHON", "UNET_PYTHON"] {
    if let chosen = environment[name], !chosen.isEmpty { return [chosen] }
  }
  if FileManager.default.isExecutableFile(atPath: repositoryRoot + "/.venv/bin/python3") { return [repositoryRoot + "/.venv/bin/python3"] }
  return ["/usr/bin/env", "python3"]
}()

/// The repository, found from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().path

/// Runs the torch Python with `arguments`: the exit status (-1 when it cannot start) and its output.
func runTorchPython(_ arguments: [String]) -> (status: Int32, output: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: torchPython[0])
  process.arguments = Array(torchPython.dropFirst()) + arguments
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  do { try process.run() } catch { return (-1, "\(torchPython[0]): \(error)") }
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

let pythonHasTorch = runTorchPython(["-c", "import torch, numpy, safetensors.numpy"]).status == 0

/// bench/golden_torch.py, found from this file's place in the repository.
let goldenScript = repositoryRoot + "/bench/golden_torch.py"

/// Recorded steps of ours (twenty of the reduced model, two of the reference's) (`unet train --dump-steps`) repeated by PyTorch from the same
/// weights, batches and dropout masks: every step's cross-entropy, Dice loss and total within a
/// relative limit, and the final weights within 5% of how far the steps moved them (a ReLU or
/// max-pool that switches on a rounding difference moves a few weights by a whole step).
@Suite(.serialized) struct GoldenTorchTests {
  /// Records `steps` steps of a model trained on a generated set and runs the comparison.
  func compare(model: [String], batch: Int, size: Int, steps: Int = 20, rtol: Double = 1e-4) throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data").path, record = root.appendingPathComponent("record").path
    let synth = try unet(["data", "synth", "--output", data, "--size", "\(size)", "--train-count", "4", "--test-count", "1"])
    try #require(synth.status == 0, "\(synth.output)")
    let train = try unet(["train", "--data-dir", data, "--exec-mode", "train", "--batch-size", "\(batch)", "--max-steps", "\(steps)",
                          "--learning-rate", "1e-4", "--log-every", "5", "--workers", "1", "--dump-steps", "\(steps):\(record)"] + model)
    try #require(train.status == 0, "\(train.output)")
    let golden = runTorchPython([goldenScript, record, "--rtol", "\(rtol)", "--weights-rtol", "0.05"])
    #expect(golden.status == 0, "\(golden.output)")
    #expect(golden.output.contains("PASSED"), "\(golden.output)")
  }

  @Test(.enabled(if: pythonHasTorch, "needs Python with torch, numpy and safetensors (CI does not install torch: it is 200+ MB); set UNET_TORCH_PYTHON, e.g. to the venv bench/real_data.py makes"))
  func referenceValidModelAtItsSmallestTile() throws {
    // The reference's 572->388 network (valid, depth 4, 64 base filters) at its smallest tile, 188->4.
    // Its loss over 16 output pixels is so sensitive to 34.5M weights that rounding differences
    // switch ReLUs from the third step on and then grow about tenfold a step (step 2: 2e-6
    // relative, step 3: 1.5e-4 measured), so two steps are compared here.
    try compare(model: ["--padding", "valid", "--depth", "4", "--base-filters", "64", "--input-size", "188"], batch: 1, size: 192, steps: 2)
  }

  @Test(.enabled(if: pythonHasTorch, "needs Python with torch, numpy and safetensors (CI does not install torch: it is 200+ MB); set UNET_TORCH_PYTHON, e.g. to the venv bench/real_data.py makes"))
  func reducedSamePaddedModel() throws {
    // On this generated set the first seven steps agree within 1e-6 relative; from then on Adam,
    // which moves a weight whose gradient is near zero by a full step whatever its sign, turns
    // rounding differences into differences that grow two- to sixfold a step: 1.1e-4 at step 11 and
    // 2.6e-4 at step 20 measured (torch 2.13 CPU). So twenty steps are held to 1e-3, not 1e-4.
    try compare(model: ["--padding", "same", "--depth", "4", "--base-filters", "16", "--input-size", "64"], batch: 2, size: 96, rtol: 1e-3)
  }
}
