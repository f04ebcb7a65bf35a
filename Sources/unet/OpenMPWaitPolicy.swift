import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - OpenMP's wait policy

/// oneDNN runs its primitives on OpenMP (Debian's libdnnl uses libgomp), whose threads spin after
/// each primitive waiting for the next, while our own kernels (Winograd, the Swift elementwise
/// loops) run on other threads: on a machine with as many threads as cores each spinning thread
/// takes a core from a worker. With `OMP_WAIT_POLICY=PASSIVE` they sleep instead; measured on the
/// 572x572 step (2-core AMD EPYC, alternated, two rounds): compiled training 1.14-1.30x, compiled
/// inference 1.44-1.48x, eager inference 1.11-1.17x, eager training 0.94-1.06x. libgomp reads the variable when it is
/// loaded, before `main`, so the process sets it and runs itself again, once.
enum OpenMPWaitPolicy {
  /// Sets OMP_WAIT_POLICY=PASSIVE and re-executes the program, unless the variable is set already
  /// (by the user, who keeps the choice, or by the first run of this one). When the re-execution
  /// fails the program goes on as it is, only slower.
  static func makePassive() {
    guard getenv("OMP_WAIT_POLICY") == nil else { return }
    // The binary by its own path, not /proc/self/exe: the process's name (ps, top, /proc/*/comm)
    // is the file name executed.
    guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return }
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
    execv(path, CommandLine.unsafeArgv)
  }
}
