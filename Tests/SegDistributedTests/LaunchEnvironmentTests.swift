import Testing

@testable import SegDistributed

// MARK: - Launcher detection

@Suite struct LaunchEnvironmentTests {
  @Test func aLoneProcessHasNoLauncher() {
    #expect(LaunchEnvironment.detect([:]) == nil)
    #expect(LaunchEnvironment.detect(["PATH": "/usr/bin", "SLURM_NTASKS": "4"]) == nil, "an sbatch script without srun is alone")
  }

  @Test func openMPIsMpirun() throws {
    let e = try #require(LaunchEnvironment.detect(
      ["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0"]))
    #expect(e.size == 4 && e.rank == 2 && e.localRank == 0)
    #expect(e.launcher.contains("mpirun") && e.launcher.contains("OMPI_COMM_WORLD_SIZE=4"))
  }

  @Test func pmiAndSlurm() throws {
    let pmi = try #require(LaunchEnvironment.detect(["PMI_SIZE": "2", "PMI_RANK": "1"]))
    #expect(pmi.size == 2 && pmi.rank == 1)
    let slurm = try #require(LaunchEnvironment.detect(["SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"]))
    #expect(slurm.size == 8 && slurm.rank == 5 && slurm.localRank == 1 && slurm.launcher.contains("Slurm"))
  }

  /// Under a launcher, a libmpi that cannot be loaded is an error naming the launcher and the file,
  /// never a run alone.
  @Test func aLauncherWithoutLibmpiIsRefused() throws {
    let env = ["OMPI_COMM_WORLD_SIZE": "2", "UNET_MPI_LIBRARY": "/nonexistent/libmpi.so.40"]
    #expect(throws: DistributedError.self) { try Distributed.start(environment: env) }
    do {
      _ = try Distributed.start(environment: env)
    } catch {
      let message = "\(error)"
      #expect(message.contains("mpirun (OMPI_COMM_WORLD_SIZE=2)") && message.contains("/nonexistent/libmpi.so.40"), "\(message)")
      #expect(message.contains("apt-get install openmpi-bin"), "\(message)")
    }
    #expect(Distributed.world == nil)
  }
}
