import Foundation
import FuzzSupport
import SegData

// MARK: - One input

/// Reads `data` as a TIFF file the two ways the tool does (palette pages as colours and, for
/// masks, as indices), both whatever the first throws; a thrown error is the right answer to bad
/// input, only a crash is not.
func readTIFF(_ data: Data) throws {
  let colours = Result { try TIFF.decodeImages(data, path: "fuzz.tif") }
  let indices = Result { try TIFF.decodePages([UInt8](data), path: "fuzz.tif", palette: .indices) }
  _ = try (colours.get(), indices.get())
}

// MARK: - Entry point

/// Fuzzes the TIFF reader (a fuzzing build) or runs its corpus once (an ordinary build).
@main enum FuzzTIFF {
  static func main() { FuzzCorpus.main(reader: "TIFF", folder: "tiff", readTIFF) }
}
