import ArgumentParser
import Foundation
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
  /// as such, and the libraries' setting errors name their flags.
  static func main() {
    let arguments = Array(CommandLine.arguments.dropFirst())
    var command: ParsableCommand
    do { command = try parseAsRoot(arguments) } catch {
      if let message = misplacedFlagMessage(arguments, root: Self.self) {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
        Self.exit(withError: ExitCode.validationFailure)
      }
      Self.exit(withError: error)
    }
    do { try command.run() } catch let stopped as TrainingStopped {
      FileHandle.standardError.write(Data("unet: \(stopped)\n".utf8))
      Self.exit(withError: ExitCode(128 + stopped.signal))
    } catch { Self.exit(withError: commandLineError(error)) }
  }
}
