import Foundation
import Testing

@testable import SegData

// MARK: - Helpers

/// Shared helpers of the SegData tests: sample pages, scratch directories, Python.
enum DataFixture {
  /// A page of deterministic, varied pixels.
  static func page(_ width: Int, _ height: Int, seed: Int = 0) -> GrayImage {
    GrayImage(width: width, height: height, pixels: (0..<width * height).map {
      UInt8(truncatingIfNeeded: ($0 &* 37 &+ seed &* 101) ^ ($0 >> 3))
    })
  }

  /// A fresh empty directory under the temporary directory; delete it with `remove`.
  static func scratchDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("segdata-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  static func remove(_ url: URL) { try? FileManager.default.removeItem(at: url) }

  /// The python3 the interop tests run, in the order of SegTestSupport's `TestPython` (this
  /// target does not link it): UNET_PYTHON, the repository's `.venv`, python3 on PATH.
  static let pythonCommand: [String] = {
    if let chosen = ProcessInfo.processInfo.environment["UNET_PYTHON"], !chosen.isEmpty { return [chosen] }
    let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent(".venv/bin/python3").path
    return FileManager.default.isExecutableFile(atPath: venv) ? [venv] : ["/usr/bin/env", "python3"]
  }()

  /// Runs `pythonCommand` with `arguments`; status -1 when it cannot start.
  static func python(_ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: pythonCommand[0])
    process.arguments = Array(pythonCommand.dropFirst()) + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return (-1, "\(pythonCommand[0]): \(error)") }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
  }

  /// Whether Python's tifffile (and numpy) can be imported here.
  static let hasTifffile = python(["-c", "import numpy, tifffile"]).status == 0
  /// Whether Python's Pillow (and numpy) can be imported here.
  static let hasPillow = python(["-c", "import numpy, PIL.Image"]).status == 0

  /// An image whose sample at flat index i ([H,W,C] order) is (i + offset) * k mod 251 (8-bit)
  /// or mod 65521 (16-bit), as `ramp` in the Python scripts of the interop tests.
  static func ramp(_ width: Int, _ height: Int, channels: Int = 1, bitDepth: Int = 8, k: Int = 7, offset: Int = 0) -> Image {
    let m = bitDepth == 8 ? 251 : 65521
    return try! Image(width: width, height: height, channels: channels, bitDepth: bitDepth,
                      samples: (0..<width * height * channels).map { UInt16((($0 + offset) * k) % m) })
  }

  /// Writes `bytes` to `name` in a fresh scratch directory and returns its URL.
  static func file(_ name: String, _ bytes: [UInt8]) throws -> URL {
    let url = try scratchDirectory().appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url
  }

  /// Runs a Python script with a scratch directory as sys.argv[1]; the script's failure fails the test.
  static func runPython(_ script: String, in dir: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let run = python(["-c", script, dir.path])
    try #require(run.status == 0, "\(run.output)", sourceLocation: sourceLocation)
  }
}

/// Little-endian field access in a file written by `TIFF.encode`, to forge malformed files.
struct LittleEndianTIFF {
  var bytes: [UInt8]

  func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
  func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
  mutating func set16(_ o: Int, _ v: Int) { bytes[o] = UInt8(v & 0xFF); bytes[o + 1] = UInt8(v >> 8 & 0xFF) }
  mutating func set32(_ o: Int, _ v: Int) { set16(o, v & 0xFFFF); set16(o + 2, v >> 16 & 0xFFFF) }

  var firstIFD: Int { u32(4) }

  /// The offset of the entry for `tag` in the first IFD.
  func entry(_ tag: Int) -> Int {
    let ifd = firstIFD
    let e = (0..<u16(ifd)).map { ifd + 2 + $0 * 12 }.first { u16($0) == tag }
    return e!
  }

  /// Overwrites the value of a one-value SHORT or LONG entry (or the offset of a longer one).
  mutating func patch(tag: Int, _ value: Int) {
    let e = entry(tag)
    if u16(e + 2) == 3 && u32(e + 4) == 1 { set16(e + 8, value) } else { set32(e + 8, value) }
  }
}

/// Writes `bytes` to a file, reads it back and checks for a DataError naming that file whose
/// reason contains `fragment`.
func expectTIFFReadError(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
  try expectReadError(bytes, name: "bad.tif", fragment, sourceLocation: sourceLocation) { try TIFF.readImages(contentsOf: $0).count }
}

/// As `expectTIFFReadError` for any reader: `read` returns something to report when it does not throw.
func expectReadError(_ bytes: [UInt8], name: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
                     _ read: (URL) throws -> Any) throws {
  let url = try DataFixture.file(name, bytes)
  defer { DataFixture.remove(url.deletingLastPathComponent()) }
  do {
    let result = try read(url)
    Issue.record("read \(result), expected an error containing \"\(fragment)\"", sourceLocation: sourceLocation)
  } catch let error as DataError {
    #expect(error.path == url.path, sourceLocation: sourceLocation)
    #expect(error.description.contains(name), sourceLocation: sourceLocation)
    #expect(error.reason.contains(fragment), "\(error)", sourceLocation: sourceLocation)
  } catch {
    Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
  }
}

