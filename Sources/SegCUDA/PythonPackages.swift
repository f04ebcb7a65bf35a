import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - pip's nvidia packages

/// The lib folders of pip's nvidia-* wheels (nvidia/cu13/lib, nvidia/cudnn/lib, ...) in the
/// site-packages of the Pythons `interpreters(environment:)` names (`CUDAOptions.pythons`), in that
/// order.
public enum PythonPackages {
  /// The lib folders in the site-packages of `interpreters`; each list of interpreters is asked for
  /// its site-packages (with a time limit) once per process.
  public static func nvidiaLibraryFolders(interpreters: [String]) -> [String] {
    lock.lock()
    defer { lock.unlock() }
    if let folders = cache[interpreters] { return folders }
    let folders = libraryFolders(in: sitePackages(interpreters: interpreters))
    cache[interpreters] = folders
    return folders
  }

  /// The folders used when no environment is given (tests, a backend built directly).
  public static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

  nonisolated(unsafe) private static var cache: [[String]: [String]] = [:]
  private static let lock = NSLock()

  /// Packages whose lib folder the loader must not use. The JIT-only cuDNN wheel (which older
  /// set-ups installed for its cudnn.h) has neither the sub-libraries of cuDNN's legacy convolution
  /// API nor the engines and heuristics its graph API needs; the full wheel beside it is used.
  static let headerOnlyForUs: Set<String> = ["cudnn_jit"]

  /// The nvidia/*/lib folders under each of `sites`, in order, leaving out `headerOnlyForUs`.
  static func libraryFolders(in sites: [String]) -> [String] {
    var folders: [String] = []
    for site in sites {
      let nvidia = "\(site)/nvidia"
      let entries = ((try? FileManager.default.contentsOfDirectory(atPath: nvidia)) ?? []).sorted()
      for e in entries where !headerOnlyForUs.contains(e) {
        let lib = "\(nvidia)/\(e)/lib"
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: lib, isDirectory: &isDir), isDir.boolValue, !folders.contains(lib) {
          folders.append(lib)
        }
      }
    }
    return folders
  }

  // MARK: - Which Pythons

  /// The python3 programs asked, first to last: UNET_PYTHON when set; the `.venv` of the Swift
  /// package that built the running program, or of the package in the current directory (what
  /// `scripts/setup.sh --tests` makes, so `swift test` and `swift run` find it); then every python3
  /// on PATH. Only ones that exist and are executable are returned, each once.
  public static func interpreters(
    environment: [String: String],
    executable: String? = runningExecutable(),
    currentDirectory: String = FileManager.default.currentDirectoryPath
  ) -> [String] {
    var candidates: [String] = []
    if let chosen = environment["UNET_PYTHON"], !chosen.isEmpty { candidates.append(chosen) }
    if let executable, let package = enclosingPackage(of: (executable as NSString).deletingLastPathComponent) {
      candidates.append("\(package)/.venv/bin/python3")
    }
    if isPackage(currentDirectory) { candidates.append("\(currentDirectory)/.venv/bin/python3") }
    let path = environment["PATH"] ?? defaultSearchPath
    // /bin and /usr/bin are often one folder: compare folders with their links resolved, but not
    // python3 itself (a venv's python3 links to its base interpreter and must stay the venv's).
    candidates += path.split(separator: ":").map { "\((String($0) as NSString).resolvingSymlinksInPath)/python3" }

    var seen: Set<String> = []
    return candidates.filter { exe in
      FileManager.default.isExecutableFile(atPath: exe) && seen.insert((exe as NSString).standardizingPath).inserted
    }
  }

  /// This process's executable, resolved (/proc/self/exe), or nil where there is none.
  public static func runningExecutable() -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
  }

  /// The nearest folder at or above `folder` that holds a Package.swift.
  static func enclosingPackage(of folder: String) -> String? {
    var dir = (folder as NSString).standardizingPath
    while !dir.isEmpty {
      if isPackage(dir) { return dir }
      let parent = (dir as NSString).deletingLastPathComponent
      if parent == dir { return nil }
      dir = parent
    }
    return nil
  }

  /// Whether `folder` is the root of a Swift package.
  static func isPackage(_ folder: String) -> Bool {
    FileManager.default.fileExists(atPath: "\(folder)/Package.swift")
  }

  // MARK: - site-packages

  /// site-packages folders of each of `interpreters`, in that order, each once.
  public static func sitePackages(interpreters: [String], timeout: TimeInterval = 5) -> [String] {
    var result: [String] = []
    for exe in interpreters {
      let script = "import site; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))"
      for line in run(exe, ["-c", script], timeout: timeout) where !result.contains(line) { result.append(line) }
    }
    return result
  }

  /// The lines a program prints, or none when it fails or runs past `timeout`.
  static func run(_ exe: String, _ arguments: [String], timeout: TimeInterval) -> [String] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: exe)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return [] }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
      return []
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    guard process.terminationStatus == 0 else { return [] }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
  }
}
