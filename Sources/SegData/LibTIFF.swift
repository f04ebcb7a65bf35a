import CTIFF
import Foundation

// libtiff works on TIFF files held in memory (TIFFClientOpenExt with the procedures below), so
// that reading and writing share one path and errors about a file can name it. Each open file
// gets its own error and warning handlers (libtiff 4.5's TIFFOpenOptions), which collect libtiff's
// messages instead of printing them: errors become part of a `DataError`, warnings (unknown tags
// and the like, common in files from other writers) are dropped.

// MARK: - A file in memory

/// A TIFF file's bytes and read/write position, and the messages libtiff reports about it.
final class TIFFMemoryFile {
  var bytes: [UInt8]
  var position = 0
  /// libtiff's error messages, "module: message", in order.
  var errors: [String] = []
  /// The name given to libtiff, which it also uses as the module of some messages.
  let name: String

  init(bytes: [UInt8] = [], name: String) {
    self.bytes = bytes
    self.name = name
  }

  /// libtiff's errors from the `start`th on, joined for a `DataError`; `fallback` when it
  /// reported none.
  func reason(since start: Int, _ fallback: String) -> String {
    let new = errors.dropFirst(start)
    return new.isEmpty ? fallback : "libtiff: " + new.prefix(3).joined(separator: "; ")
  }
}

// MARK: - Opening

enum LibTIFF {
  /// The largest single allocation libtiff may make for one file (strip and tile buffers,
  /// tag arrays), so that a forged header cannot make it ask for gigabytes.
  static let maxAllocation = 1 << 30

  /// Silences libtiff's process-wide default handlers (which print to stderr) once; messages
  /// still reach each file's own handlers, which run first.
  private static let quietDefaults: Void = {
    TIFFSetErrorHandler(nil)
    TIFFSetWarningHandler(nil)
  }()

  /// Opens `file` with `mode` ("r", or "wl"/"wb" for a little- or big-endian file); nil when
  /// libtiff refuses it, with its reasons in `file.errors`. Keep `file` alive until `TIFFClose`.
  static func open(_ file: TIFFMemoryFile, mode: String) -> OpaquePointer? {
    _ = quietDefaults
    guard let options = TIFFOpenOptionsAlloc() else { return nil }
    defer { TIFFOpenOptionsFree(options) }
    let handle = Unmanaged.passUnretained(file).toOpaque()
    TIFFOpenOptionsSetErrorHandlerExtR(options, collectError, handle)
    TIFFOpenOptionsSetWarningHandlerExtR(options, dropWarning, handle)
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, tmsize_t(maxAllocation))
    return TIFFClientOpenExt(file.name, mode, handle, readProc, writeProc, seekProc, closeProc, sizeProc,
                             mapProc, unmapProc, options)
  }

  // MARK: - Fields

  /// The value of a tag of C type `T` (uint16_t, uint32_t, a pointer), its TIFF default when
  /// absent and the tag has one, else nil.
  static func field<T>(_ tif: OpaquePointer, _ tag: Int32, _ zero: T) -> T? {
    var value = zero
    let found = withUnsafeMutablePointer(to: &value) { p in
      withVaList([p]) { TIFFVGetFieldDefaulted(tif, UInt32(tag), $0) }
    }
    return found == 1 ? value : nil
  }

  /// Sets a tag whose C type is uint16_t (passed as int, as C's variadic promotion does) or
  /// uint32_t; false when libtiff refuses (its reason is in the file's errors).
  @discardableResult
  static func set(_ tif: OpaquePointer, _ tag: Int32, _ value: some CVarArg) -> Bool {
    withVaList([value]) { TIFFVSetField(tif, UInt32(tag), $0) } == 1
  }

  /// The name of a TIFF compression scheme, for messages.
  static func compressionName(_ c: Int) -> String {
    [1: "uncompressed", 2: "CCITT RLE", 3: "CCITT Group 3", 4: "CCITT Group 4", 5: "LZW", 6: "old JPEG",
     7: "JPEG", 8: "Deflate", 32773: "PackBits", 32946: "Deflate", 34712: "JPEG 2000", 34925: "LZMA", 50000: "Zstandard",
     50001: "WebP"][c] ?? "unknown"
  }
}

// MARK: - Message handlers

/// Formats libtiff's printf-style message into the file's error list; returning 1 tells libtiff
/// not to call the process-wide handlers as well.
private let collectError: TIFFErrorHandlerExtR = { _, userData, module, format, arguments in
  guard let userData, let format, let arguments else { return 1 }
  let file = Unmanaged<TIFFMemoryFile>.fromOpaque(userData).takeUnretainedValue()
  var buffer = [CChar](repeating: 0, count: 512)
  _ = vsnprintf(&buffer, buffer.count, format, arguments)
  // Many messages repeat the file's name, which the DataError already gives.
  let message = String(cString: buffer).replacingOccurrences(of: "\(file.name): ", with: "")
  if let module, case let m = String(cString: module), !m.isEmpty, m != file.name {
    file.errors.append("\(m): \(message)")
  } else {
    file.errors.append(message)
  }
  return 1
}

private let dropWarning: TIFFErrorHandlerExtR = { _, _, _, _, _ in 1 }

// MARK: - Client procedures

private func memoryFile(_ handle: thandle_t?) -> TIFFMemoryFile {
  Unmanaged<TIFFMemoryFile>.fromOpaque(handle!).takeUnretainedValue()
}

private let readProc: TIFFReadWriteProc = { handle, buffer, size in
  let file = memoryFile(handle)
  let n = max(0, min(Int(size), file.bytes.count - file.position))
  if n > 0, let buffer {
    file.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + file.position, byteCount: n) }
  }
  file.position += n
  return tmsize_t(n)
}

private let writeProc: TIFFReadWriteProc = { handle, buffer, size in
  let file = memoryFile(handle)
  guard size > 0, let buffer else { return 0 }
  let end = file.position + Int(size)
  if file.position == file.bytes.count {  // libtiff mostly appends
    file.bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: Int(size)))
  } else {
    if end > file.bytes.count { file.bytes += [UInt8](repeating: 0, count: end - file.bytes.count) }
    file.bytes.withUnsafeMutableBytes { ($0.baseAddress! + file.position).copyMemory(from: buffer, byteCount: Int(size)) }
  }
  file.position = end
  return size
}

private let seekProc: TIFFSeekProc = { handle, offset, whence in
  let file = memoryFile(handle)
  // Offsets come from the file and may be forged; SEEK_CUR and SEEK_END may move back, with the
  // offset in two's complement. Positions past 2^62 are refused rather than overflowing.
  let limit = Int64(1) << 62
  let delta = Int64(bitPattern: offset)
  let base: Int64 = switch whence {
  case SEEK_CUR: Int64(file.position)
  case SEEK_END: Int64(file.bytes.count)
  default: 0
  }
  guard whence == SEEK_SET ? offset <= UInt64(limit) : (-limit...limit).contains(delta) else { return UInt64.max }
  let target = whence == SEEK_SET ? Int64(offset) : base + delta
  guard target >= 0, target <= limit else { return UInt64.max }
  file.position = Int(target)
  return UInt64(target)
}

private let closeProc: TIFFCloseProc = { _ in 0 }
private let sizeProc: TIFFSizeProc = { UInt64(memoryFile($0).bytes.count) }
/// Not mapped: libtiff then reads through `readProc`.
private let mapProc: TIFFMapFileProc = { _, _, _ in 0 }
private let unmapProc: TIFFUnmapFileProc = { _, _, _ in }
