import Foundation
import FuzzSupport
import SegTrain

// MARK: - One input

/// Reads `data` as a safetensors checkpoint; a thrown error is the right answer to bad input,
/// only a crash is not.
func readSafeTensors(_ data: Data) throws {
  _ = try SafeTensors.decode(data, file: "fuzz.safetensors")
}

// MARK: - Entry point

/// Fuzzes the safetensors reader (a fuzzing build) or runs its corpus once (an ordinary build).
@main enum FuzzSafeTensors {
  static func main() { FuzzCorpus.main(reader: "safetensors", folder: "safetensors", readSafeTensors) }
}
