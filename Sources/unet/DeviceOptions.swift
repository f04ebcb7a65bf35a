import ArgumentParser
import Foundation
import SegCPU
import SegCore
import SegNN
import SegTrain

// MARK: - Precision and device

/// Where the model runs and in what arithmetic (train, evaluate, predict, benchmark).
struct DeviceOptions: ParsableArguments {
  @Option(help: "cpu (oneDNN), reference (plain Swift, slow) or cuda.")
  var device = DeviceChoice(.cpu)
  @OptionGroup var precision: PrecisionOptions
  @Flag(name: [.customLong("xla"), .customLong("compile")],
        help: "Compile the step (the role of XLA): traced once, then replayed as a program (training, evaluation, prediction, benchmark).")
  var xla = false
  @Option(name: .customLong("dump-graph"), help: ArgumentHelp(
    "With --xla, print each compiled program before and after every pass into this folder.", valueName: "dir"))
  var dumpGraph: String?
  @Option(name: .customLong("conv-algorithm"), help: ArgumentHelp(
    "3x3 stride-1 convolutions on the CPU: auto (Winograd where it measured faster), direct (oneDNN) or winograd (default: UNET_CPU_CONV_ALGORITHM, else auto).",
    valueName: "auto|direct|winograd"))
  var convAlgorithm: ConvAlgorithm?

  func validate() throws {
    if let convAlgorithm { DeviceChoice.convAlgorithmFlag = convAlgorithm }
    if dumpGraph != nil, !xla { throw ValidationError("--dump-graph: prints the compiled programs, so it needs --xla (or --compile)") }
  }

  /// What --xla and --dump-graph ask for; nil without --xla.
  var compile: CompileOptions? {
    guard xla else { return nil }
    return CompileOptions(dumpDirectory: dumpGraph.map { URL(fileURLWithPath: $0) } ?? GraphDump.environmentDirectory)
  }

}
