import ArgumentParser
import Foundation
import SegCPU
import SegCore
import SegNN

// MARK: - --conv-algorithm

extension ConvAlgorithm: ExpressibleByArgument {}
extension BenchmarkClock: ExpressibleByArgument {}

/// The CPU backend's 3x3 stride-1 convolutions run so far and the algorithm of each (direct or
/// Winograd), one line per direction and shape, for `--profile`; nil on another backend or before
/// any ran.
func convAlgorithmTable(_ backend: any Backend) -> String? {
  guard let cpu = backend as? CPUBackend, !cpu.convAlgorithmLog.isEmpty else { return nil }
  var lines = ["3x3 stride-1 convolutions (--conv-algorithm \(cpu.options.convAlgorithm.rawValue))    calls  algorithm"]
  for use in cpu.convAlgorithmLog {
    lines.append(
      "\(use.direction) \(use.shape)".padding(toLength: 58, withPad: " ", startingAt: 0)
        + "\(use.calls)".leftPadded(to: 6) + "  \(use.algorithm)")
  }
  return lines.joined(separator: "\n")
}

/// The same as "direction shape: algorithm" strings, for a benchmark's JSON; nil off the CPU.
func convAlgorithmList(_ backend: any Backend) -> [String]? {
  guard let cpu = backend as? CPUBackend else { return nil }
  return cpu.convAlgorithmLog.map { "\($0.direction) \($0.shape): \($0.algorithm)" }
}

extension String {
  fileprivate func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

// MARK: - unet benchmark layers

/// `unet benchmark layers`: every 3x3 stride-1 convolution of the U-Net in all three directions,
/// direct and Winograd, with the algorithm `--conv-algorithm auto` picks.
struct BenchmarkLayersCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "layers",
    abstract: "Time each 3x3 convolution of the U-Net on the CPU (batch 1, forward, backward-data and backward-filter): auto's algorithm, time, effective GFLOP/s, speed-ups of auto and of Winograd over direct, Winograd's error against direct.")

  @OptionGroup(title: "Model") var model: ModelOptions
  @Option(help: "Timed repetitions of each kernel (the best is reported).")
  var repeats = 3
  @Option(help: "wall (elapsed time) or cpu (the process's CPU time: on a loaded machine, pinned to one core with taskset).")
  var clock = BenchmarkClock.wall
  @Option(help: "Also write the JSON to this file.")
  var output: String?

  func run() throws {
    let config = try model.config(embedded: false)
    let cpu = CPUBackend.shared
    // The shapes are the ones a forward pass of this model records; direct, so that it is quick.
    let unet = try UNet(config: config, seed: 0, on: cpu)
    cpu.resetConvAlgorithmLog()
    let image = try Tensor(HostTensor(shape: [1, config.inputSize, config.inputSize, config.inputChannels], floats: [Float](
      repeating: 0, count: config.inputSize * config.inputSize * config.inputChannels)), on: cpu)
    try withoutGradients { _ = try ConvAlgorithm.with(.direct) { try unet(image).floats() } }
    let shapes = LayerBenchmark.shapes(from: cpu.convAlgorithmLog)
    cpu.resetConvAlgorithmLog()
    print("unet: \(shapes.count) 3x3 convolutions of the U-Net at \(config.inputSize)x\(config.inputSize), \(repeats) timed runs each")
    let result = try LayerBenchmark.run(shapes, repeats: repeats, clock: clock)
    print(result.table())
    if let output { try writeJSON(result, to: output) }
  }
}
