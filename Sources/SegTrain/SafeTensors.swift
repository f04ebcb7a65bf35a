import Foundation
import SegCore

#if _endian(big)
  #error("SafeTensors copies element bytes as they are in memory; the format is little-endian")
#endif

// MARK: - Errors

/// A file (checkpoint, safetensors, log) that cannot be read, written or used: names the file and
/// what is wrong.
public struct FileError: Error, CustomStringConvertible, Sendable {
  public let file: String
  public let message: String

  /// `file` nil: a checkpoint held in memory.
  public init(file: String?, _ message: String) {
    self.file = file ?? "checkpoint"
    self.message = message
  }

  public var description: String { "\(file): \(message)" }
}

// MARK: - Format

/// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
/// mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the
/// data that follows) plus an optional "__metadata__" object of strings, then the raw
/// little-endian, row-major element bytes.
public enum SafeTensors {
  /// The contents of a file: tensors by name and the free-form metadata.
  public typealias Contents = (tensors: [String: HostTensor], metadata: [String: String])

  /// The reference implementation's limit; a larger header means a corrupt length field.
  static let maxHeaderSize = 100_000_000

  /// The file's bytes. Tensors are laid out by decreasing element size, then name, as the Rust
  /// writer does, so every tensor is aligned to its element size (the header is padded to 8 bytes).
  public static func encode(_ tensors: [String: HostTensor], metadata: [String: String] = [:]) throws -> Data {
    guard tensors["__metadata__"] == nil else {
      throw FileError(file: "(safetensors)", "\"__metadata__\" is reserved and cannot name a tensor")
    }
    let order = tensors.keys.sorted {
      let (a, b) = (tensors[$0]!.dtype.byteSize, tensors[$1]!.dtype.byteSize)
      return a != b ? a > b : $0 < $1
    }
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var body = Data()
    for name in order {
      let t = tensors[name]!
      let begin = body.count
      body.append(bytes(of: t.data))
      header[name] = ["dtype": t.dtype.safetensorsName, "shape": t.shape.dims, "data_offsets": [begin, body.count]] as [String: Any]
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
    json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
    var file = Data()
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
    return file + json + body
  }

  /// Parses and validates `data`; `file` names the source in errors.
  public static func decode(_ data: Data, file: String) throws -> Contents {
    let data = data.startIndex == 0 ? data : Data(data)  // indices below count from 0
    func fail(_ why: String) -> FileError { FileError(file: file, why) }
    guard data.count >= 8 else { throw fail("truncated: \(data.count) bytes, shorter than the 8-byte header length") }
    let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    guard n <= UInt64(min(data.count - 8, maxHeaderSize)) else {
      throw fail("corrupt or truncated: header length \(n) exceeds the \(data.count - 8) bytes after the length field or the \(maxHeaderSize)-byte limit")
    }
    let headerEnd = 8 + Int(n)
    let header: Header
    do {
      header = try JSONDecoder().decode(Header.self, from: data.subdata(in: 8..<headerEnd))
    } catch let DecodingError.dataCorrupted(c) where c.codingPath.isEmpty {
      // Foundation reports a fractional or huge integer this way too, without its place.
      let isJSON = (try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd))) != nil
      throw fail(isJSON ? "corrupt header: a shape or data_offsets number is not an integer of a valid size" : "corrupt header: not valid JSON")
    } catch let e as DecodingError {
      throw fail("corrupt header: \(describe(e))")
    }
    let bodySize = data.count - headerEnd

    var entries: [(name: String, dtype: DType, shape: Shape, range: Range<Int>)] = []
    for (name, value) in header.entries {
      let e = try check(name, value, fail)
      entries.append((name, e.dtype, e.shape, e.range))
    }
    // The spec asks the data to be covered exactly, without holes or overlaps.
    entries.sort { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
    var end = 0
    for e in entries {
      if e.range.lowerBound < end {
        throw fail("corrupt header: tensor \"\(e.name)\" [\(e.range.lowerBound), \(e.range.upperBound)) overlaps the data of another tensor")
      }
      if e.range.lowerBound > end {
        throw fail("corrupt header: data bytes [\(end), \(e.range.lowerBound)) belong to no tensor")
      }
      if e.range.upperBound > bodySize {
        throw fail("truncated: tensor \"\(e.name)\" ends at data byte \(e.range.upperBound), the file has \(bodySize)")
      }
      end = e.range.upperBound
    }
    if end != bodySize { throw fail("corrupt: \(bodySize - end) bytes after the last tensor's data") }

    var tensors: [String: HostTensor] = [:]
    for e in entries {
      let raw = data[(headerEnd + e.range.lowerBound)..<(headerEnd + e.range.upperBound)]
      tensors[e.name] = try HostTensor(shape: e.shape, data: hostData(raw, e.dtype))
    }
    return (tensors, header.metadata)
  }

  /// One header entry, checked: known dtype, non-negative shape, offsets whose span holds exactly
  /// the shape's bytes.
  private static func check(
    _ name: String, _ e: Header.Entry, _ fail: (String) -> FileError
  ) throws -> (dtype: DType, shape: Shape, range: Range<Int>) {
    guard let dtype = DType.allCases.first(where: { $0.safetensorsName == e.dtype }) else {
      throw fail("tensor \"\(name)\": unsupported dtype \"\(e.dtype)\" (supported: F64, F32, F16, BF16, I32, U8)")
    }
    guard e.shape.allSatisfy({ $0 >= 0 }) else {
      throw fail("corrupt header: tensor \"\(name)\" has a negative dimension in shape \(e.shape)")
    }
    let offsets = e.data_offsets
    guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
      throw fail("corrupt header: tensor \"\(name)\" data_offsets \(offsets) are not [begin, end] with 0 <= begin <= end")
    }
    var bytes = dtype.byteSize
    for d in e.shape {
      let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
      guard !overflow else { throw fail("corrupt header: tensor \"\(name)\" shape \(e.shape) is too large") }
      bytes = p
    }
    guard offsets[1] - offsets[0] == bytes else {
      throw fail("corrupt header: tensor \"\(name)\" \(e.dtype)\(e.shape) needs \(bytes) bytes, data_offsets \(offsets) span \(offsets[1] - offsets[0])")
    }
    return (dtype, Shape(e.shape), offsets[0]..<offsets[1])
  }

  /// Where in the header a decoding error is, and what it is.
  private static func describe(_ error: DecodingError) -> String {
    let context: DecodingError.Context
    var what: String?
    switch error {
    case .keyNotFound(let key, let c): (context, what) = (c, "missing \"\(key.stringValue)\"")
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): context = c
    @unknown default: return "\(error)"
    }
    let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    return "at \(path.isEmpty ? "top level" : String(path.dropFirst())): \(what ?? context.debugDescription)"
  }

  // MARK: - Files

  /// Writes `tensors` and `metadata` to `url` atomically (see `writeAtomically`).
  public static func write(_ tensors: [String: HostTensor], metadata: [String: String] = [:], to url: URL) throws {
    let data: Data
    do {
      data = try encode(tensors, metadata: metadata)
    } catch let e as FileError {
      throw FileError(file: url.path, e.message)
    }
    try writeAtomically(data, to: url)
  }

  /// Reads and validates the file at `url`.
  public static func read(from url: URL) throws -> Contents {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw FileError(file: url.path, "cannot be read: \(FileProblem.describe(error, path: url.path, writing: false))")
    }
    return try decode(data, file: url.path)
  }
}

// MARK: - Header

/// The JSON header: tensor entries by name and the optional "__metadata__" object of strings.
private struct Header: Decodable {
  struct Entry: Decodable {
    var dtype: String
    var shape: [Int]
    var data_offsets: [Int]
  }
  struct Key: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }
  var entries: [String: Entry] = [:]
  var metadata: [String: String] = [:]

  init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: Key.self)
    for key in c.allKeys {
      if key.stringValue == "__metadata__" {
        metadata = try c.decode([String: String].self, forKey: key)
      } else {
        entries[key.stringValue] = try c.decode(Entry.self, forKey: key)
      }
    }
  }
}

// MARK: - Atomic writes

/// Writes `data` to a temporary file next to `url`, flushes it to disk, then renames it over
/// `url`: readers see the old file or the new one, never a partial one, and a failure leaves the
/// old file as it was.
public func writeAtomically(_ data: Data, to url: URL) throws {
  let path = url.path
  func fail(_ what: String) -> FileError {
    FileError(file: path, "\(what): \(String(cString: strerror(errno)))")
  }
  let dir = url.deletingLastPathComponent().path
  let temp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
  guard fd >= 0 else { throw fail("cannot create a temporary file in \(dir)") }
  var renamed = false
  defer { if !renamed { unlink(temp) } }
  do {
    defer { close(fd) }
    try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
      var done = 0
      while done < buffer.count {
        let n = Foundation.write(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw fail("cannot write \(temp)") }
        done += n
      }
    }
    guard fsync(fd) == 0 else { throw fail("cannot flush \(temp)") }
  }
  guard rename(temp, path) == 0 else { throw fail("cannot rename \(temp) to it") }
  renamed = true
  // Makes the rename itself durable; not all file systems allow it, and the data is in place.
  let dfd = open(dir, O_RDONLY)
  if dfd >= 0 {
    fsync(dfd)
    close(dfd)
  }
}

// MARK: - Element bytes

extension DType {
  /// The dtype's name in a safetensors header.
  var safetensorsName: String {
    switch self {
    case .f64: return "F64"
    case .f32: return "F32"
    case .f16: return "F16"
    case .bf16: return "BF16"
    case .i32: return "I32"
    case .u8: return "U8"
    }
  }
}

/// The elements' bytes as they lie in memory (little-endian).
private func bytes(of data: HostData) -> Data {
  switch data {
  case .f64(let a): return a.withUnsafeBytes { Data($0) }
  case .f32(let a): return a.withUnsafeBytes { Data($0) }
  case .f16(let a): return a.withUnsafeBytes { Data($0) }
  case .bf16(let a): return a.withUnsafeBytes { Data($0) }
  case .i32(let a): return a.withUnsafeBytes { Data($0) }
  case .u8(let a): return Data(a)
  }
}

/// Elements of `dtype` from their little-endian bytes (a whole number of elements).
private func hostData(_ raw: Data, _ dtype: DType) -> HostData {
  func load<T>(_: T.Type) -> [T] {
    raw.withUnsafeBytes { src in
      [T](unsafeUninitializedCapacity: src.count / MemoryLayout<T>.stride) { dst, n in
        UnsafeMutableRawBufferPointer(dst).copyMemory(from: src)
        n = src.count / MemoryLayout<T>.stride
      }
    }
  }
  switch dtype {
  case .f64: return .f64(load(Double.self))
  case .f32: return .f32(load(Float.self))
  case .f16: return .f16(load(Float16.self))
  case .bf16: return .bf16(load(UInt16.self))
  case .i32: return .i32(load(Int32.self))
  case .u8: return .u8([UInt8](raw))
  }
}
