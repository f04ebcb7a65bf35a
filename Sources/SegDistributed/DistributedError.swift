// MARK: - Errors

/// Why a data-parallel run cannot start or go on.
public enum DistributedError: Error, CustomStringConvertible, Sendable {
  /// libmpi could not be opened (the loader's reasons).
  case libraryMissing(String)
  /// libmpi lacks a function or handle we use (not Open MPI, or too old).
  case symbolMissing(String, library: String)
  /// A launcher started us, but MPI could not be loaded: what the launcher says and why.
  case launcherWithoutMPI(launcher: String, reason: String)
  /// An MPI call failed.
  case call(String, code: Int, message: String)
  /// The launcher's process count disagrees with MPI's.
  case sizeMismatch(launcher: String, expected: Int, actual: Int)
  /// The processes disagree on something that must be the same on all (weights, settings).
  case replicasDiffer(String)
  /// A setting that cannot work with several processes.
  case unsupported(String)

  public var description: String {
    switch self {
    case .libraryMissing(let reasons):
      return "cannot load Open MPI's libmpi (\(reasons)); install it with `apt-get install openmpi-bin libopenmpi-dev` "
        + "or name the file in UNET_MPI_LIBRARY"
    case .symbolMissing(let name, let library):
      return "\(library) has no symbol \(name): UNetSeg needs Open MPI 4 or newer (MPICH's handles are not Open MPI's)"
    case .launcherWithoutMPI(let launcher, let reason):
      return "started by \(launcher), but MPI cannot be used: \(reason). Without MPI the processes would each train "
        + "alone; run `unet` without the launcher, or install Open MPI"
    case .call(let call, let code, let message):
      return "\(call) failed with MPI error \(code): \(message)"
    case .sizeMismatch(let launcher, let expected, let actual):
      return "\(launcher) says \(expected) processes, but MPI sees \(actual): start them through MPI's launcher "
        + "(mpirun, or srun --mpi=pmix under Slurm)"
    case .replicasDiffer(let what):
      return "the processes disagree: \(what)"
    case .unsupported(let what):
      return what
    }
  }
}
