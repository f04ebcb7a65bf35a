import ArgumentParser
import SegNN

// MARK: - Precision and device

/// Where the model runs and in what arithmetic (train, evaluate, predict, benchmark).
struct DeviceOptions: ParsableArguments {
  @Option(help: "cpu (oneDNN), reference (plain Swift, slow) or cuda.")
  var device = DeviceChoice(.cpu)
  @OptionGroup var precision: PrecisionOptions
  @Flag(help: "Compile the step (the role of XLA).")
  var xla = false

  func validate() throws {
    if xla { throw ValidationError("--xla: not yet available on this build (the graph compiler is not built yet)") }
  }
}
