import Foundation
import SwiftProtobuf

// MARK: - Event file

/// A TensorBoard event file, `events.out.tfevents.<seconds>.<host>` in a directory: TFRecord
/// records (length as little-endian UInt64, its masked CRC-32C, the serialized `Event`, its masked
/// CRC-32C), the first holding the file version. Each event is flushed as it is written, so
/// TensorBoard shows a run while it trains.
public final class TensorBoardEventWriter {
  /// The file written.
  public let url: URL
  private let handle: FileHandle

  /// Creates `directory` if needed and a new event file in it.
  public init(directory: URL) throws {
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw FileError(file: directory.path, "cannot be created for TensorBoard's event files (\(error.localizedDescription))")
    }
    let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
    let seconds = Int(Date().timeIntervalSince1970)
    // Two writers in one second (tests, or train then evaluate) must not share a file.
    var candidate = directory.appendingPathComponent("events.out.tfevents.\(seconds).\(host)")
    var n = 1
    while FileManager.default.fileExists(atPath: candidate.path) {
      candidate = directory.appendingPathComponent("events.out.tfevents.\(seconds).\(host).\(n)")
      n += 1
    }
    url = candidate
    guard FileManager.default.createFile(atPath: url.path, contents: nil), let h = try? FileHandle(forWritingTo: url) else {
      throw FileError(file: url.path, "cannot be created: check that the --tensorboard directory is writable")
    }
    handle = h
    var version = Tensorboard_Event()
    version.wallTime = Date().timeIntervalSince1970
    version.fileVersion = "brain.Event:2"
    try write(version)
  }

  deinit { try? handle.close() }

  // MARK: - Summaries

  /// Scalars (tag, value) at `step`, in one event.
  public func scalars(_ values: [(tag: String, value: Double)], step: Int) throws {
    try summary(values.map { tag, value in
      var v = Tensorboard_Summary.Value()
      v.tag = tag
      v.simpleValue = Float(value)
      return v
    }, step: step)
  }

  /// A PNG image (`png` encodes `width` x `height` pixels of `channels` 1, 2, 3 or 4) at `step`.
  public func image(_ tag: String, png: Data, width: Int, height: Int, channels: Int, step: Int) throws {
    var image = Tensorboard_Summary.Image()
    image.width = Int32(width)
    image.height = Int32(height)
    image.colorspace = Int32(channels)
    image.encodedImageString = png
    var v = Tensorboard_Summary.Value()
    v.tag = tag
    v.image = image
    try summary([v], step: step)
  }

  private func summary(_ values: [Tensorboard_Summary.Value], step: Int) throws {
    var e = Tensorboard_Event()
    e.wallTime = Date().timeIntervalSince1970
    e.step = Int64(step)
    var s = Tensorboard_Summary()
    s.value = values
    e.summary = s
    try write(e)
  }

  // MARK: - Records

  private func write(_ event: Tensorboard_Event) throws {
    let data = try event.serializedData()
    let length = littleEndian(UInt64(data.count))
    var record = Data(capacity: data.count + 16)
    record.append(length)
    record.append(littleEndian(maskedCRC32C(length)))
    record.append(data)
    record.append(littleEndian(maskedCRC32C(data)))
    do {
      try handle.write(contentsOf: record)
    } catch {
      throw FileError(file: url.path, "cannot be written (\(error.localizedDescription))")
    }
  }

  private func littleEndian<T: FixedWidthInteger>(_ v: T) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
}

// MARK: - CRC-32C

/// TFRecord's checksum: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), rotated right by
/// 15 bits plus 0xA282EAD8, so that a CRC of data holding CRCs stays well mixed.
func maskedCRC32C(_ data: Data) -> UInt32 {
  let crc = crc32c(data)
  return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

/// CRC-32C of `data`, one byte at a time through a 256-entry table.
func crc32c(_ data: Data) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in data { crc = crc32cTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
  return crc ^ 0xFFFF_FFFF
}

private let crc32cTable: [UInt32] = (0..<256).map { i in
  var c = UInt32(i)
  for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
  return c
}
