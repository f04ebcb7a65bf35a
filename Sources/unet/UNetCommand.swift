import ArgumentParser
import Foundation
import SegDistributed
import SegTrain

/// The command-line tool: train, evaluate and run U-Net segmentation models.
@main
struct UNetCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unet",
    abstract: "Train and run U-Net segmentation models on biomedical images.",
    subcommands: [
      TrainCommand.self, EvaluateCommand.self, PredictCommand.self, DataCommand.self, BenchmarkCommand.self,
      DoctorCommand.self, ExportCommand.self,
    ],
    defaultSubcommand: TrainCommand.self)

  /// argument-parser's main, with two messages of our own: a flag of another subcommand is named
  /// as such, and the libraries' setting errors name their flags. OpenMP's threads are made to
  /// sleep rather than spin between oneDNN's primitives first (`OpenMPWaitPolicy`).
  static func main() {
    OpenMPWaitPolicy.makePassive()
    let arguments = Array(CommandLine.arguments.dropFirst())
    var command: ParsableCommand
    do { command = try parseAsRoot(arguments) } catch {
      if let message = misplacedFlagMessage(arguments, root: Self.self) {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
        Self.exit(withError: ExitCode.validationFailure)
      }
      Self.exit(withError: error)
    }
    do {
      try command.run()
      try Distributed.finish()
    } catch let stopped as TrainingStopped {
      // Every rank stopped after the same update (they agree each step): rank 0 saved and says so.
      if Distributed.world?.isRoot ?? true { FileHandle.standardError.write(Data("unet: \(stopped)\n".utf8)) }
      try? Distributed.finish()
      Self.exit(withError: ExitCode(128 + stopped.signal))
    } catch {
      // A failing rank names itself and ends the whole job, so that no other rank waits for it.
      if Distributed.world != nil { Distributed.fail("Error: " + Self.message(for: commandLineError(error)), code: 1) }
      Self.exit(withError: commandLineError(error))
    }
  }
}
