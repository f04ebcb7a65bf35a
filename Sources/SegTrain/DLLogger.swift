import Foundation

// MARK: - Values

/// A value in a DLLogger line's "data" object.
public enum LogValue: Sendable, Equatable, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
  ExpressibleByStringLiteral, ExpressibleByBooleanLiteral
{
  case int(Int)
  case double(Double)
  case string(String)
  case bool(Bool)
  case null

  public init(integerLiteral v: Int) { self = .int(v) }
  public init(floatLiteral v: Double) { self = .double(v) }
  public init(stringLiteral v: String) { self = .string(v) }
  public init(booleanLiteral v: Bool) { self = .bool(v) }

  /// The value as Python's json.dumps writes it (NaN and infinities as Python spells them).
  var json: String {
    switch self {
    case .int(let i): return String(i)
    case .double(let d):
      if d.isNaN { return "NaN" }
      if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
      return "\(d)"
    case .string(let s): return jsonString(s)
    case .bool(let b): return b ? "true" : "false"
    case .null: return "null"
    }
  }
}

/// A JSON string literal for `s`.
func jsonString(_ s: String) -> String {
  var out = "\""
  for u in s.unicodeScalars {
    switch u {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
    default: out.unicodeScalars.append(u)
    }
  }
  return out + "\""
}

// MARK: - Logger

/// Writes NVIDIA DLLogger's JSON stream format (JSONStreamBackend), one line per record, so the
/// reference's log tools read our runs:
/// `DLLL {"timestamp": "<unix s>", "datetime": "<local time>", "elapsedtime": "<s>", "type": "LOG",
/// "step": [...], "data": {...}}`. The file is appended to and each line is written through at once.
public final class DLLogger {
  public let url: URL
  private let handle: FileHandle
  private let start: Date
  private let now: () -> Date
  private let formatter: DateFormatter = {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return f
  }()

  /// Opens `url` for appending (creating it) and, if given, writes the run's flags as the
  /// "PARAMETER" line. `now` is the clock (tests fix it).
  public init(url: URL, parameters: [String: LogValue]? = nil, now: @escaping () -> Date = Date.init) throws {
    self.url = url
    self.now = now
    start = now()
    if !FileManager.default.fileExists(atPath: url.path) {
      guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
        throw FileError(file: url.path, "cannot create the log file")
      }
    }
    do {
      handle = try FileHandle(forWritingTo: url)
      try handle.seekToEnd()
    } catch {
      throw FileError(file: url.path, "cannot open the log file for appending: \(FileProblem.describe(error, path: url.path))")
    }
    if let parameters { try write(step: jsonString("PARAMETER"), data: parameters) }
  }

  deinit { try? handle.close() }

  /// A "LOG" record at `step` (e.g. [step], or [] for the final summary).
  public func log(step: [Int], data: [String: LogValue]) throws {
    try write(step: "[" + step.map(String.init).joined(separator: ", ") + "]", data: data)
  }

  /// A "METADATA" record describing a metric (e.g. ["unit": "images/s"]).
  public func metadata(metric: String, _ metadata: [String: String]) throws {
    let fields = metadata.keys.sorted().map { "\(jsonString($0)): \(jsonString(metadata[$0]!))" }
    try emit(["\"type\": \"METADATA\"", "\"metric\": \(jsonString(metric))", "\"metadata\": {\(fields.joined(separator: ", "))}"])
  }

  // MARK: - Lines

  private func write(step: String, data: [String: LogValue]) throws {
    let fields = data.keys.sorted().map { "\(jsonString($0)): \(data[$0]!.json)" }
    try emit(["\"type\": \"LOG\"", "\"step\": \(step)", "\"data\": {\(fields.joined(separator: ", "))}"])
  }

  /// Writes one line: the time fields as DLLogger writes them (strings), then `fields`.
  private func emit(_ fields: [String]) throws {
    let t = now()
    let timeFields = [
      "\"timestamp\": \(jsonString(String(t.timeIntervalSince1970)))",
      "\"datetime\": \(jsonString(datetime(t)))",
      "\"elapsedtime\": \(jsonString(String(t.timeIntervalSince(start))))",
    ]
    let line = "DLLL {" + (timeFields + fields).joined(separator: ", ") + "}\n"
    do {
      try handle.write(contentsOf: Data(line.utf8))
    } catch {
      throw FileError(file: url.path, "cannot write to the log file: \(FileProblem.describe(error, path: url.path))")
    }
  }

  /// Local time as Python's str(datetime): "2024-05-01 13:04:05.123456".
  private func datetime(_ t: Date) -> String {
    let seconds = t.timeIntervalSince1970.rounded(.down)
    let micros = Int(((t.timeIntervalSince1970 - seconds) * 1e6).rounded(.down))
    return formatter.string(from: Date(timeIntervalSince1970: seconds)) + String(format: ".%06d", micros)
  }
}
