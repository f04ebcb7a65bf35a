import Foundation
import FuzzSupport
import SegData

// MARK: - One input

/// Reads `data` as a PNG file the two ways the tool does (palette images as colours and, for
/// masks, as indices), both whatever the first throws; a thrown error is the right answer to bad
/// input, only a crash is not. libpng refuses a chunk whose CRC does not match, which would stop
/// nearly every mutation at its first chunk, so the input is read again with its CRCs repaired.
func readPNG(_ data: Data) throws {
  let bytes = [UInt8](data)
  func read(_ bytes: [UInt8]) throws {
    let colours = Result { try PNG.decode(bytes, path: "fuzz.png", palette: .expand) }
    let indices = Result { try PNG.decode(bytes, path: "fuzz.png", palette: .indices) }
    _ = try (colours.get(), indices.get())
  }
  let asGiven = Result { try read(bytes) }
  let repaired = withRepairedCRCs(bytes)
  if repaired != bytes { _ = try? read(repaired) }
  try asGiven.get()
}

// MARK: - CRCs

/// `bytes` with the CRC of each whole chunk after the signature set to match its type and data.
func withRepairedCRCs(_ bytes: [UInt8]) -> [UInt8] {
  var out = bytes, at = 8
  while at + 12 <= out.count {
    let length = out[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
    guard length <= out.count - at - 12 else { break }
    let crc = crc32(out[at + 4..<at + 8 + length])
    for i in 0..<4 { out[at + 8 + length + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * i)) }
    at += 12 + length
  }
  return out
}

/// PNG's CRC-32 (ISO 3309, as zlib's crc32).
func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
  }
  return ~crc
}

// MARK: - Entry point

/// Fuzzes the PNG reader (a fuzzing build) or runs its corpus once (an ordinary build).
@main enum FuzzPNG {
  static func main() { FuzzCorpus.main(reader: "PNG", folder: "png", readPNG) }
}
