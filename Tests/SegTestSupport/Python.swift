import Foundation

// MARK: - The tests' Python

/// The python3 that tests compare against (safetensors, tifffile, Pillow): UNET_PYTHON when set,
/// else the repository's `.venv` (what `scripts/setup.sh --tests` installs into), else python3 on
/// PATH. SegDataTests' `DataFixture` follows the same order.
public enum TestPython {
  /// The command that starts it: one executable path, or `/usr/bin/env python3`.
  public static let command: [String] = {
    if let chosen = ProcessInfo.processInfo.environment["UNET_PYTHON"], !chosen.isEmpty { return [chosen] }
    if FileManager.default.isExecutableFile(atPath: repositoryVenv) { return [repositoryVenv] }
    return ["/usr/bin/env", "python3"]
  }()

  /// <repository>/.venv/bin/python3, found from this file's place in the repository.
  public static let repositoryVenv: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent(".venv/bin/python3").path

  /// Runs it with `arguments`: the exit status (-1 when it cannot start) and standard output,
  /// with standard error too when `mergingErrors`.
  public static func run(_ arguments: [String], mergingErrors: Bool = false) -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst()) + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = mergingErrors ? pipe : FileHandle.nullDevice
    do { try process.run() } catch { return (-1, Data("\(command[0]): \(error)".utf8)) }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, output)
  }
}
