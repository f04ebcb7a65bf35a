import Foundation
import Testing

@testable import SegDistributed

// MARK: - Recording the table

/// A symbol source that records the names the MPI table asks for and hands back dummy addresses
/// (never called).
final class MPISymbolRecorder: MPISymbolSource {
  var names: [String] = []
  func address(_ name: String) throws -> UnsafeMutableRawPointer {
    names.append(name)
    return UnsafeMutableRawPointer(bitPattern: 0x10)!
  }
}

// MARK: - Open MPI's header

/// Open MPI's mpi.h (Debian's libopenmpi-dev), or UNET_MPI_INCLUDE's, and a C compiler.
enum MPIHeader {
  static let folder: String? = {
    let candidates = [ProcessInfo.processInfo.environment["UNET_MPI_INCLUDE"], "/usr/lib/x86_64-linux-gnu/openmpi/include",
                      "/usr/lib/aarch64-linux-gnu/openmpi/include", "/usr/include/openmpi"].compactMap { $0 }
    return candidates.first { FileManager.default.fileExists(atPath: "\($0)/mpi.h") }
  }()

  static let compiler: String? = {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    for name in ["cc", "gcc", "clang"] {
      for folder in folders where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") { return "\(folder)/\(name)" }
    }
    return nil
  }()

  static let missing: String? = {
    if compiler == nil { return "no C compiler (cc, gcc or clang) on PATH to check our MPI declarations against mpi.h" }
    if folder == nil { return "Open MPI's mpi.h not found: `apt-get install libopenmpi-dev` (scripts/setup.sh installs it)" }
    return nil
  }()

  /// Our header's folder in the repository.
  static let ours = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Sources/CMPI").path

  /// Runs the C compiler with `arguments` on `source`: its status and output.
  static func compile(_ arguments: [String], source: String) throws -> (status: Int32, output: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmpi-check-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("check.c")
    try source.write(to: file, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: compiler!)
    p.arguments = arguments + ["-I\(folder!)", "-I\(ours)", file.path]
    let pipe = Pipe()
    (p.standardOutput, p.standardError) = (pipe, pipe)
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }
}

// MARK: - Tests

@Suite struct MPIHeaderTests {
  /// Every function the table loads has our typedef, and each typedef takes the real function's
  /// address without a cast (a mismatch in any parameter is an error); the constants agree.
  @Test(.enabled(if: MPIHeader.missing == nil, Comment(rawValue: MPIHeader.missing ?? "")))
  func declarationsMatchMpiH() throws {
    let recorder = MPISymbolRecorder()
    _ = try MPIAPI(recorder)
    let functions = recorder.names.filter { $0.hasPrefix("MPI_") }
    #expect(functions == MPIAPI.functions)
    var source = "#include <mpi.h>\n#define CMPI_CHECK\n#include \"cmpi.h\"\n"
    for (i, f) in functions.enumerated() { source += "static cmpi_\(f)_fn const check_\(i) = &\(f);\n" }
    let flags = ["-std=c11", "-fsyntax-only", "-Werror=incompatible-pointer-types", "-Werror=int-conversion"]
    let result = try MPIHeader.compile(flags, source: source)
    #expect(result.status == 0, "our MPI declarations disagree with mpi.h:\n\(result.output.prefix(4000))")
  }

  /// Each predefined handle we resolve with dlsym is the address of the global that mpi.h's macro
  /// names (MPI_COMM_WORLD -> &ompi_mpi_comm_world), and MPI_IN_PLACE is ((void *) 1).
  @Test(.enabled(if: MPIHeader.missing == nil, Comment(rawValue: MPIHeader.missing ?? "")))
  func handleSymbolsAreMpiHsMacros() throws {
    let recorder = MPISymbolRecorder()
    _ = try MPIAPI(recorder)
    let handles = MPIAPI.handles
    #expect(Set(recorder.names.filter { !$0.hasPrefix("MPI_") }) == Set(handles.map(\.symbol)))
    let source = "#include <mpi.h>\n" + handles.map { "CMPI_HANDLE \($0.macro)" }.joined(separator: "\n") + "\nCMPI_HANDLE MPI_IN_PLACE\n"
    let result = try MPIHeader.compile(["-E", "-P"], source: source)
    #expect(result.status == 0, "the preprocessor failed:\n\(result.output.prefix(2000))")
    let lines = result.output.split(separator: "\n").filter { $0.hasPrefix("CMPI_HANDLE ") }.map(String.init)
    try #require(lines.count == handles.count + 1)
    for (h, line) in zip(handles, lines) {
      #expect(line.replacingOccurrences(of: " ", with: "").contains("&(\(h.symbol))"), "\(h.macro) expands to \(line)")
    }
    #expect(lines.last!.replacingOccurrences(of: " ", with: "") == "CMPI_HANDLE((void*)1)", "MPI_IN_PLACE expands to \(lines.last!)")
  }
}
