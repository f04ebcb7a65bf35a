import Foundation

#if FUZZING
import CFuzzer
#endif

// Each fuzz target has two builds. Built with `-D FUZZING` and `-sanitize=fuzzer` (scripts/fuzz.sh),
// its `main` hands control to libFuzzer, which mutates inputs and runs the reader on each. In an
// ordinary build (the package's `swift build`) it is a plain program that runs every file of its
// corpus through the reader once: a quick regression run that needs no libFuzzer.

// MARK: - Entry point

/// The `main` of every fuzz target.
public enum FuzzCorpus {
  /// Runs `body` (one reader on one input) under libFuzzer in a fuzzing build,
  /// else once on each file named in the command line (files, or folders read recursively), or
  /// on every file of `Fuzz/corpus/<folder>` when none is given.
  public static func main(reader: String, folder: String, sourceFile: String = #filePath, _ body: @escaping (Data) throws -> Void) -> Never {
    #if FUZZING
    FuzzInput.body = body
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    #else
    regressionRun(reader: reader, folder: folder, sourceFile: sourceFile, body)
    #endif
  }
}

#if FUZZING
/// The reader that `fuzzOneInput` runs, set by `main` before libFuzzer starts.
private enum FuzzInput {
  nonisolated(unsafe) static var body: ((Data) throws -> Void)?
}

/// One input from libFuzzer. Exported under libFuzzer's name as well, for its own `main` (linked
/// in by -sanitize=fuzzer, though SwiftPM's entry point is the one that runs).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  guard let body = FuzzInput.body else { fatalError("the fuzz target's main did not run: no reader to fuzz") }
  // A thrown error is the reader refusing bad input, as it should; only crashes count.
  _ = try? body(start.map { Data(bytes: $0, count: count) } ?? Data())
  return 0
}
#endif

// MARK: - Regression run

extension FuzzCorpus {
  /// Every file given, or the corpus, through `body` once, printing what the reader made of each;
  /// a reader that crashes takes the program down with it, so exit status 0 means every input
  /// was survived (thrown errors included: they are the right answer to damaged files).
  static func regressionRun(reader: String, folder: String, sourceFile: String, _ body: (Data) throws -> Void) -> Never {
    var arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.contains("-h") || arguments.contains("--help") {
      print("usage: \(CommandLine.arguments[0]) [FILE|FOLDER ...]: runs each file through the \(reader) reader once "
        + "(default: the corpus in Fuzz/corpus/\(folder))")
      exit(0)
    }
    if arguments.isEmpty {
      // Fuzz/<Target>/<Target>.swift -> Fuzz/corpus/<folder>
      let fuzz = URL(fileURLWithPath: sourceFile).deletingLastPathComponent().deletingLastPathComponent()
      arguments = [fuzz.appendingPathComponent("corpus").appendingPathComponent(folder).path]
    }
    var count = 0
    for argument in arguments {
      let files = inputs(argument)
      guard !files.isEmpty else { fail("\(argument): no such file or folder, or an empty folder; give fuzz inputs") }
      for file in files {
        guard let data = FileManager.default.contents(atPath: file) else { fail("\(file): cannot be read") }
        do {
          try body(data)
          print("\(file): read")
        } catch {
          print("\(file): refused: \(error)")
        }
        count += 1
      }
    }
    print("\(reader): \(count) input(s) read without a crash")
    exit(0)
  }

  /// The regular files at `path`: itself, or those under it (sorted), hidden ones skipped.
  static func inputs(_ path: String) -> [String] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [] }
    guard isDirectory.boolValue else { return [path] }
    guard let walk = FileManager.default.enumerator(at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.isRegularFileKey],
                                                    options: [.skipsHiddenFiles]) else { return [] }
    return walk.compactMap { $0 as? URL }
      .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
      .map(\.path).sorted()
  }

  private static func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
  }
}
