import Foundation

// MARK: - The process's place in a job

/// The data-parallel job this process belongs to, if any. MPI is process-wide (initialised once,
/// finalised once), so the communicator is too: the command line starts it before a run and ends
/// it after, or aborts the whole job when this rank fails.
public enum Distributed {
  nonisolated(unsafe) private static var joined: Communicator?
  private static let lock = NSLock()

  /// The job's communicator once `start` joined one; nil in a process running alone.
  public static var world: Communicator? { lock.withLock { joined } }

  /// Joins the processes a launcher started (see `LaunchEnvironment`), loading libmpi with dlopen;
  /// returns nil, loading nothing, when no launcher started this process. Under a launcher, a
  /// libmpi that cannot be loaded is an error rather than a silent run alone.
  public static func start(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Communicator? {
    if let world { return world }
    guard let launch = LaunchEnvironment.detect(environment) else { return nil }
    let api: MPIAPI
    do {
      api = try MPIAPI(MPILibrary(environment: environment))
    } catch {
      throw DistributedError.launcherWithoutMPI(launcher: launch.launcher, reason: "\(error)")
    }
    let communicator = try Communicator(api: api, launch: launch)
    lock.withLock { joined = communicator }
    return communicator
  }

  /// Ends a run that went well: MPI_Finalize on every rank.
  public static func finish() throws { try world?.finalize() }

  /// Prints `message` to standard error, prefixed with this rank when in a job, and ends the
  /// process with `code`; in a job every other rank ends too (MPI_Abort), so none waits forever
  /// for this one.
  public static func fail(_ message: String, code: Int32) -> Never {
    let prefix = world.map { "[\($0.name)] " } ?? ""
    FileHandle.standardError.write(Data((prefix + message + "\n").utf8))
    if let world {
      if world.size > 1 {
        FileHandle.standardError.write(Data("\(prefix)unet: ending every rank of the job (MPI_Abort)\n".utf8))
      }
      world.abort(code: code)
    }
    exit(code)
  }
}
