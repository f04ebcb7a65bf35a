import ArgumentParser

/// The command-line tool: train, evaluate and run U-Net segmentation models.
@main
struct UNetCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unet",
    abstract: "Train and run U-Net segmentation models on biomedical images.",
    subcommands: [
      TrainCommand.self, EvaluateCommand.self, PredictCommand.self, DataCommand.self, BenchCommand.self,
      BenchmarkCommand.self, DoctorCommand.self,
    ],
    defaultSubcommand: TrainCommand.self)
}
