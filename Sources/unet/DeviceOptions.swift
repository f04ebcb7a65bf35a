import ArgumentParser
import Foundation
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

  func validate() throws {
    if dumpGraph != nil, !xla { throw ValidationError("--dump-graph: prints the compiled programs, so it needs --xla (or --compile)") }
  }

  /// What --xla and --dump-graph ask for; nil without --xla.
  var compile: CompileOptions? {
    guard xla else { return nil }
    return CompileOptions(dumpDirectory: dumpGraph.map { URL(fileURLWithPath: $0) } ?? GraphDump.environmentDirectory)
  }

}
