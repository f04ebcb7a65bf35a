import Foundation
import SegCore
import Testing

// MARK: - No backend recovers an op by a downcast

/// Backends receive each op with its own type from their kernel table, so no backend source casts
/// a primitive (`as!`, `as?`, `as`, `is`, or a cast helper's `as: T.self`) to one of the types of
/// `Primitives.all`, and no kernel in a backend's folder takes `any Primitive`. The scan reads the
/// sources next to this file's repository.
@Suite struct PrimitiveDowncastTests {
  /// The folders scanned, each with whether its kernels are checked for `any Primitive` too (the
  /// table itself, in SegCore/Backend, takes any op to dispatch it).
  static let scannedFolders: [(path: String, kernels: Bool)] = [
    ("Sources/SegCPU", true), ("Sources/SegCore/Backend", false), ("Sources/SegCUDA", true),
  ]

  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  @Test(arguments: scannedFolders.map(\.path))
  func noDowncastIn(folder: String) throws {
    for finding in try Self.scan(folder) { Issue.record("\(finding)") }
  }

  /// Every backend's folder is scanned, and each exists.
  @Test func everyBackendFolderIsScanned() throws {
    let paths = Self.scannedFolders.map(\.path)
    for backend in ["Sources/SegCPU", "Sources/SegCore/Backend", "Sources/SegCUDA"] {
      #expect(paths.contains(backend), "\(backend) is not scanned")
    }
    for path in paths {
      #expect(try !Self.swiftFiles(in: path).isEmpty, "\(path) has no Swift files: the scan would pass on nothing")
    }
  }

  /// The scan finds each kind of downcast and passes over casts of other types and comments.
  @Test func theScanFindsDowncasts() {
    let source = """
      let c = op as! Conv2D
      if let s = op as? Slice { }
      case let u as Unary: break
      if op is ReLUBackward { }
      let p = try primitive(op, as: Sum.self)
      func binary(_ op: any Primitive, _ x: [Operand]) {}
      let s = storage as? CPUStorage
      let t: any Primitive.Type = Conv2D.self
      // a comment about op as? Pad
      """
    let findings = Self.findings(in: source, file: "Example.swift", kernels: true)
    #expect(findings.map(\.line) == [1, 2, 3, 4, 5, 6], "\(findings)")
    #expect(Self.findings(in: source, file: "Example.swift", kernels: false).map(\.line) == [1, 2, 3, 4, 5])
  }

  // MARK: Scanning

  struct Finding: CustomStringConvertible {
    let file: String
    let line: Int
    let text: String
    var description: String { "\(file):\(line): \(text)" }
  }

  /// A downcast to a primitive type: as!, as?, as, is, or a helper's `as: T.self`.
  static let downcast: NSRegularExpression = {
    let names = Primitives.all.map { NSRegularExpression.escapedPattern(for: String(describing: $0)) }
    return try! NSRegularExpression(pattern: #"\b(as[!?]?|is)\s*:?\s*("# + names.joined(separator: "|") + #")\b"#)
  }()

  /// A value of any primitive type (not the metatype).
  static let anyPrimitive = try! NSRegularExpression(pattern: #"\bany\s+Primitive\b(?!\s*\.\s*Type)"#)

  static func swiftFiles(in folder: String) throws -> [URL] {
    let root = repository.appendingPathComponent(folder)
    guard let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
    return walk.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }.sorted { $0.path < $1.path }
  }

  static func scan(_ folder: String) throws -> [Finding] {
    let kernels = scannedFolders.first { $0.path == folder }?.kernels ?? true
    return try swiftFiles(in: folder).flatMap { url in
      let file = String(url.path.dropFirst(repository.path.count + 1))
      return findings(in: try String(contentsOf: url, encoding: .utf8), file: file, kernels: kernels)
    }
  }

  /// The lines of `source` (code only, comments dropped) with a downcast, and with `any Primitive`
  /// when `kernels`.
  static func findings(in source: String, file: String, kernels: Bool) -> [Finding] {
    var found: [Finding] = []
    for (i, line) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let code = String(line.components(separatedBy: "//")[0])
      let range = NSRange(code.startIndex..., in: code)
      let hit = downcast.firstMatch(in: code, range: range) != nil
        || (kernels && anyPrimitive.firstMatch(in: code, range: range) != nil)
      if hit { found.append(Finding(file: file, line: i + 1, text: line.trimmingCharacters(in: .whitespaces))) }
    }
    return found
  }
}
