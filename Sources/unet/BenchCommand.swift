import ArgumentParser
import Foundation
import SegCPU

/// `unet bench kernels`: the CPU backend's convolutions against the machine's sgemm ceiling.
struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure the CPU backend's convolution kernels against a 4096^3 sgemm (JSON).")

  @Option(help: "Timed repetitions of each kernel (the best is reported).")
  var repeats = 3
  @Option(help: "Also write the JSON to this file.")
  var output: String?

  func run() throws {
    let result = try KernelBenchmark.run(repeats: repeats)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let json = try encoder.encode(result)
    print(String(decoding: json, as: UTF8.self))
    if let output {
      do { try json.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
        throw ValidationError("--output \(output): cannot write (\(error.localizedDescription))")
      }
    }
  }
}
