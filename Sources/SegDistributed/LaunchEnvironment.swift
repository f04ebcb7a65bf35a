import Foundation

// MARK: - The launcher

/// How the process was started, read from the environment a launcher sets: Open MPI's mpirun
/// (OMPI_COMM_WORLD_SIZE), a PMI launcher such as MPICH's hydra (PMI_SIZE), or Slurm's srun
/// (SLURM_NTASKS with SLURM_PROCID). A process with none of them runs alone and never loads MPI.
public struct LaunchEnvironment: Sendable, Equatable {
  /// The launcher, for messages ("mpirun (OMPI_COMM_WORLD_SIZE=2)").
  public let launcher: String
  /// The processes the launcher started.
  public let size: Int
  /// This process's rank as the launcher says, when it says.
  public let rank: Int?
  /// This process's rank among those on its node, when the launcher says.
  public let localRank: Int?

  /// The launcher that `environment` shows, or nil when none started this process.
  public static func detect(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> LaunchEnvironment? {
    func int(_ key: String) -> Int? { environment[key].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    if let size = int("OMPI_COMM_WORLD_SIZE") {
      return LaunchEnvironment(launcher: "mpirun (OMPI_COMM_WORLD_SIZE=\(size))", size: size, rank: int("OMPI_COMM_WORLD_RANK"),
                               localRank: int("OMPI_COMM_WORLD_LOCAL_RANK"))
    }
    if let size = int("PMI_SIZE") {
      return LaunchEnvironment(launcher: "a PMI launcher (PMI_SIZE=\(size))", size: size, rank: int("PMI_RANK"),
                               localRank: int("MPI_LOCALRANKID") ?? int("SLURM_LOCALID"))
    }
    if let size = int("SLURM_NTASKS"), environment["SLURM_PROCID"] != nil {
      return LaunchEnvironment(launcher: "Slurm (SLURM_NTASKS=\(size))", size: size, rank: int("SLURM_PROCID"),
                               localRank: int("SLURM_LOCALID"))
    }
    return nil
  }
}
