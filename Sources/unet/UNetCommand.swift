import ArgumentParser
import Foundation

/// The command-line tool: train, evaluate and run U-Net segmentation models.
@main
struct UNetCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unet",
    abstract: "Train and run U-Net segmentation models on biomedical images.",
    subcommands: [
      TrainCommand.self, EvaluateCommand.self, PredictCommand.self, DataCommand.self, BenchmarkCommand.self,
      DoctorCommand.self,
    ],
    defaultSubcommand: TrainCommand.self)

  /// argument-parser's main, with two messages of our own: a flag of another subcommand is named
  /// as such, and the libraries' setting errors name their flags.
  static func main() {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if let message = misplacedFlagMessage(arguments, root: Self.self) {
      FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
      Self.exit(withError: ExitCode.validationFailure)
    }
    do {
      var command = try parseAsRoot(arguments)
      try command.run()
    } catch {
      Self.exit(withError: commandLineError(error))
    }
  }
}
