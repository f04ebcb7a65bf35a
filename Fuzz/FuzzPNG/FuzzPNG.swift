import Foundation
import FuzzSupport
import SegData

// MARK: - One input

/// Reads `data` as a PNG file the two ways the tool does (palette images as colours and, for
/// masks, as indices), both whatever the first throws; a thrown error is the right answer to bad
/// input, only a crash is not.
func readPNG(_ data: Data) throws {
  let colours = Result { try PNG.decode(data, path: "fuzz.png") }
  let indices = Result { try PNG.decode([UInt8](data), path: "fuzz.png", palette: .indices) }
  _ = try (colours.get(), indices.get())
}

// MARK: - Entry point

/// Fuzzes the PNG reader (a fuzzing build) or runs its corpus once (an ordinary build).
@main enum FuzzPNG {
  static func main() { FuzzCorpus.main(reader: "PNG", folder: "png", readPNG) }
}
