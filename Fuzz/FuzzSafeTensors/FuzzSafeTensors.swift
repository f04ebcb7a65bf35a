import Foundation
import FuzzSupport
import SegTrain

// MARK: - One input

/// Reads `data` as a safetensors checkpoint; a thrown error is the right answer to bad input,
/// only a crash is not. Nearly every mutation of the 8-byte header length makes it point past
/// the end, which stops the reader before the JSON, so the input is read again with the length
/// brought into range (unchanged when it already is).
func readSafeTensors(_ data: Data) throws {
  let asGiven = Result { try SafeTensors.decode(data, file: "fuzz.safetensors") }
  if data.count >= 8 {
    let length = data.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    let inRange = length % UInt64(data.count - 7)
    if inRange != length {
      var repaired = data
      withUnsafeBytes(of: inRange.littleEndian) { repaired.replaceSubrange(0..<8, with: $0) }
      _ = try? SafeTensors.decode(repaired, file: "fuzz.safetensors")
    }
  }
  _ = try asGiven.get()
}

// MARK: - Entry point

/// Fuzzes the safetensors reader (a fuzzing build) or runs its corpus once (an ordinary build).
@main enum FuzzSafeTensors {
  static func main() { FuzzCorpus.main(reader: "safetensors", folder: "safetensors", readSafeTensors) }
}
