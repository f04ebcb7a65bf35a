import ArgumentParser
import Foundation

// MARK: - JSON results

/// Writes `value` as sorted, indented JSON to `path`, atomically; an error names `flag` and the path.
func writeJSON<T: Encodable>(_ value: T, to path: String, flag: String = "--output") throws {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
  do { try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
    throw ValidationError("\(flag) \(path): cannot write (\(error.localizedDescription))")
  }
}
