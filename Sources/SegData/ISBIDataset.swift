import Foundation

// MARK: - ISBI 2012 layout

/// The ISBI 2012 EM segmentation data set: a directory holding `train-volume.tif` (training
/// slices), `train-labels.tif` (one label page per training slice, the same size, 255 = cell
/// interior, 0 = membrane) and `test-volume.tif` (unlabelled slices), each a multi-page 8-bit
/// grayscale TIFF.
public struct ISBIDataset: Sendable {
  /// The training slices with their labels as class indices (the files' 255 -> 1, 0 -> 0), in page order.
  public let train: [LabelledSlice]
  /// The unlabelled test slices, in page order.
  public let test: [GrayImage]

  /// The training images' file name.
  public static let trainVolumeFile = "train-volume.tif"
  /// The training labels' file name.
  public static let trainLabelsFile = "train-labels.tif"
  /// The test images' file name.
  public static let testVolumeFile = "test-volume.tif"

  /// A data set held in memory.
  public init(train: [LabelledSlice], test: [GrayImage]) {
    self.train = train
    self.test = test
  }

  // MARK: - Loading

  /// Reads and checks the three files in `directory`: labels must match the volume page by page in
  /// size and be binary (0 or 255).
  public static func load(directory: URL) throws -> ISBIDataset {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
      throw DataError(path: directory.path, "no such directory; expected an ISBI 2012 data set with "
        + "\(trainVolumeFile), \(trainLabelsFile) and \(testVolumeFile)")
    }
    guard isDirectory.boolValue else {
      throw DataError(path: directory.path, "not a directory; expected an ISBI 2012 data set directory with "
        + "\(trainVolumeFile), \(trainLabelsFile) and \(testVolumeFile)")
    }
    let volumeURL = directory.appendingPathComponent(trainVolumeFile)
    let labelsURL = directory.appendingPathComponent(trainLabelsFile)
    let testURL = directory.appendingPathComponent(testVolumeFile)
    let volume = try readVolume(volumeURL, expected: "the training images")
    let labels = try readVolume(labelsURL, expected: "the training labels, one page per training image")
    let test = try readVolume(testURL, expected: "the test images")

    guard labels.count == volume.count else {
      throw DataError(path: labelsURL.path, "\(labels.count) pages, but \(trainVolumeFile) has \(volume.count); "
        + "every training image needs one label page")
    }
    var train: [LabelledSlice] = []
    for (i, (image, label)) in zip(volume, labels).enumerated() {
      guard image.width == label.width, image.height == label.height else {
        throw DataError(path: labelsURL.path, "page \(i) is \(label.width)x\(label.height), "
          + "but page \(i) of \(trainVolumeFile) is \(image.width)x\(image.height)")
      }
      try checkBinary(label, page: i, path: labelsURL.path)
      train.append(LabelledSlice(width: image.width, height: image.height, image: image.pixels, binaryMask: label.pixels))
    }
    return ISBIDataset(train: train, test: test)
  }

  private static func readVolume(_ url: URL, expected: String) throws -> [GrayImage] {
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw DataError(path: url.path, "missing; expected \(expected) as a multi-page 8-bit grayscale TIFF "
        + "(ISBI 2012 layout)")
    }
    return try TIFF.read(contentsOf: url)
  }

  /// Throws naming the first pixel that is neither 0 (membrane) nor 255 (cell interior).
  private static func checkBinary(_ label: GrayImage, page: Int, path: String) throws {
    guard let k = label.pixels.firstIndex(where: { $0 != 0 && $0 != 255 }) else { return }
    throw DataError(path: path, "page \(page): label value \(label.pixels[k]) at x \(k % label.width), "
      + "y \(k / label.width); labels must be 0 (membrane) or 255 (cell interior)")
  }

  // MARK: - Writing

  /// Writes `train` (grayscale images, labels class 0 or 1, written as 0/255) and `test` in the
  /// ISBI layout, creating `directory`.
  public static func write(directory: URL, train: [LabelledSlice], test: [GrayImage]) throws {
    let labelsPath = directory.appendingPathComponent(trainLabelsFile).path
    guard !train.isEmpty else { throw DataError(path: labelsPath, "no training slices to write") }
    guard !test.isEmpty else {
      throw DataError(path: directory.appendingPathComponent(testVolumeFile).path, "no test slices to write")
    }
    for (i, s) in train.enumerated() {
      guard s.label.count == s.width * s.height else {
        throw DataError(path: labelsPath, "slice \(i): \(s.label.count) label pixels for a \(s.width)x\(s.height) image")
      }
      guard s.channels == 1 else {
        throw DataError(path: directory.appendingPathComponent(trainVolumeFile).path,
                        "slice \(i) has \(s.channels) channels; ISBI volumes are 8-bit grayscale")
      }
      if let k = s.label.firstIndex(where: { $0 > 1 }) {
        throw DataError(path: labelsPath, "slice \(i): class \(s.label[k]) at x \(k % s.width), y \(k / s.width); "
          + "ISBI labels hold two classes, 0 (membrane) and 1 (cell interior)")
      }
    }
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw DataError(path: directory.path, "cannot create the directory: \(error.localizedDescription)")
    }
    try TIFF.write(train.map { GrayImage(width: $0.width, height: $0.height, pixels: $0.image) },
                   to: directory.appendingPathComponent(trainVolumeFile))
    try TIFF.write(train.map { GrayImage(width: $0.width, height: $0.height, pixels: $0.binaryMask) },
                   to: directory.appendingPathComponent(trainLabelsFile))
    try TIFF.write(test, to: directory.appendingPathComponent(testVolumeFile))
  }

  /// Writes a synthetic ISBI-like set (`SyntheticEM`): `trainCount` labelled and `testCount`
  /// unlabelled `size` x `size` slices; the test slices follow the training ones in the seed's
  /// sequence, so none repeats. ISBI 2012 itself is 30 + 30 slices of 512 x 512.
  public static func writeSynthetic(
    directory: URL, size: Int = 512, trainCount: Int = 30, testCount: Int = 30, seed: UInt64 = 0
  ) throws {
    guard size > 0, trainCount > 0, testCount > 0 else {
      throw DataError(path: directory.path, "cannot synthesise \(trainCount) training and \(testCount) test "
        + "slices of \(size)x\(size); all three must be positive")
    }
    let train = SyntheticEM.generate(count: trainCount, size: size, seed: seed)
    let test = (0..<testCount).map { i -> GrayImage in
      let s = SyntheticEM.slice(size: size, seed: seed, index: UInt64(trainCount + i))
      return GrayImage(width: s.width, height: s.height, pixels: s.image)
    }
    try write(directory: directory, train: train, test: test)
  }
}
