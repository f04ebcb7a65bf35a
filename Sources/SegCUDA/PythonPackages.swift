import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - pip's nvidia packages

/// The lib folders of pip's nvidia-* wheels (nvidia/cu13/lib, nvidia/cudnn/lib, ...) in the
/// site-packages of every python3 on a search path (the process's PATH, given by `CUDAOptions`).
public enum PythonPackages {
  /// The folders searched for python3 when no PATH is given.
  public static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

  /// Each python3 on `path` is asked for its site-packages with a time limit, once per process
  /// and path.
  public static func nvidiaLibraryFolders(path: String) -> [String] {
    lock.lock()
    defer { lock.unlock() }
    if let folders = cache[path] { return folders }
    let folders = findFolders(path: path)
    cache[path] = folders
    return folders
  }

  nonisolated(unsafe) private static var cache: [String: [String]] = [:]
  private static let lock = NSLock()

  private static func findFolders(path: String) -> [String] {
    var folders: [String] = []
    for site in sitePackages(path: path) {
      let nvidia = "\(site)/nvidia"
      let entries = ((try? FileManager.default.contentsOfDirectory(atPath: nvidia)) ?? []).sorted()
      for e in entries {
        let lib = "\(nvidia)/\(e)/lib"
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: lib, isDirectory: &isDir), isDir.boolValue, !folders.contains(lib) {
          folders.append(lib)
        }
      }
    }
    return folders
  }

  /// site-packages folders of every distinct python3 in the folders of `path` (':'-separated).
  public static func sitePackages(path: String, timeout: TimeInterval = 5) -> [String] {
    var seen: Set<String> = []
    var result: [String] = []
    for dir in path.split(separator: ":") {
      let exe = "\(dir)/python3"
      guard FileManager.default.isExecutableFile(atPath: exe) else { continue }
      let real = (exe as NSString).resolvingSymlinksInPath
      guard seen.insert(real).inserted else { continue }
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
