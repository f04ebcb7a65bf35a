import Foundation

// MARK: - Detection

/// The layouts a data set directory can have.
public enum DatasetKind: String, Sendable, CaseIterable {
  /// The ISBI 2012 TIFF stacks (`ISBIDataset`).
  case isbi
  /// `images/` and `masks/` with matching file names (`FolderDataset`).
  case folder

  /// `.isbi` when the three ISBI files are in `directory` (checked first), `.folder` when it has
  /// `images/` and `masks/` directories; otherwise a `DataError` saying what was looked for.
  public static func detect(directory: URL) throws -> DatasetKind {
    guard isDirectory(directory) else {
      throw DataError(path: directory.path, FileManager.default.fileExists(atPath: directory.path)
        ? "not a directory; expected a data set directory" : "no such directory; expected a data set directory")
    }
    let isbi = [ISBIDataset.trainVolumeFile, ISBIDataset.trainLabelsFile, ISBIDataset.testVolumeFile]
    let isbiFound = isbi.filter { FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path) }
    if isbiFound.count == isbi.count { return .isbi }
    let folders = [FolderDataset.imagesDirectory, FolderDataset.masksDirectory]
    let foldersFound = folders.filter { isDirectory(directory.appendingPathComponent($0)) }
    if foldersFound.count == folders.count { return .folder }
    func found(_ names: [String]) -> String { names.isEmpty ? "none" : names.joined(separator: ", ") }
    throw DataError(path: directory.path, "not a data set: looked for the ISBI 2012 files \(isbi.joined(separator: ", ")) "
      + "(found \(found(isbiFound))) and for the folders images/ and masks/ (found \(found(foldersFound.map { $0 + "/" })))")
  }
}

func isDirectory(_ url: URL) -> Bool {
  var isDirectory: ObjCBool = false
  return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
}

// MARK: - Samples

/// An image of a folder data set and its mask.
public struct FolderSample: Sendable {
  /// The file name without its extension, shared by the image and the mask.
  public let name: String
  /// The image, converted to the data set's channel count (its bit depth kept).
  public let image: Image
  /// The class index of each pixel, [H,W] row-major, each < the data set's classes.
  public let mask: [UInt8]

  /// The image's (and the mask's) width.
  public var width: Int { image.width }
  /// The image's (and the mask's) height.
  public var height: Int { image.height }

  /// A sample held in memory; `mask` must have `image.width * image.height` entries.
  public init(name: String, image: Image, mask: [UInt8]) {
    (self.name, self.image, self.mask) = (name, image, mask)
  }
}

/// An unlabelled image with its name (file name without the extension).
public struct NamedImage: Sendable {
  /// The file name without its extension.
  public let name: String
  /// The image, converted to the data set's channel count.
  public let image: Image

  /// A named image held in memory.
  public init(name: String, image: Image) { (self.name, self.image) = (name, image) }
}

/// An image file and the mask file of the same name.
public struct FolderPair: Sendable, Equatable {
  /// The file name without its extension, shared by both files.
  public let name: String
  /// The file in `images/`.
  public let image: URL
  /// The file in `masks/`.
  public let mask: URL
}

// MARK: - The data set

/// A data set of image files and mask files: `images/a.png` goes with `masks/a.png` (or
/// `masks/a.tif`; the names without extensions match, PNG or TIFF on either side), any sizes, any
/// count. A mask holds either class indices 0..<classes or, with two classes, 0 and 255 (binary:
/// 255 -> class 1; 0 and 65535 in a 16-bit file; palette masks are always indices). An optional
/// `test/` directory holds unlabelled images for prediction.
public struct FolderDataset: Sendable {
  /// The labelled samples, ordered by name.
  public let train: [FolderSample]
  /// The images of `test/`, ordered by name; empty when there is no `test/`.
  public let test: [NamedImage]
  /// Classes the masks' values index.
  public let classes: Int
  /// Channels of every image: 1 or 3.
  public let channels: Int

  /// The images' directory.
  public static let imagesDirectory = "images"
  /// The masks' directory: one file per image, of the same name.
  public static let masksDirectory = "masks"
  /// The optional directory of unlabelled images to predict.
  public static let testDirectory = "test"

  /// A data set held in memory.
  public init(train: [FolderSample], test: [NamedImage], classes: Int, channels: Int) {
    (self.train, self.test, self.classes, self.channels) = (train, test, classes, channels)
  }

  // MARK: - Loading

  /// Reads and checks `directory`: every image needs a mask of its size and every mask an image;
  /// mask values must be classes. `channels` nil takes 3 when any image is RGB, else 1; images
  /// with other channel counts are converted (gray copied to RGB, RGB to luma).
  public static func load(directory: URL, classes: Int = 2, channels: Int? = nil) throws -> FolderDataset {
    guard isDirectory(directory) else {
      throw DataError(path: directory.path, "no such directory; expected a folder data set with images/ and masks/")
    }
    guard (2...256).contains(classes) else {
      throw DataError(path: directory.path, "\(classes) classes; a folder data set has 2 to 256")
    }
    if let channels, channels != 1 && channels != 3 {
      throw DataError(path: directory.path, "\(channels) input channels; images have 1 (grayscale) or 3 (RGB)")
    }
    var samples = try pairs(directory: directory).map { try loadSample($0, classes: classes) }
    let testDir = directory.appendingPathComponent(testDirectory)
    var test: [NamedImage] = []
    if FileManager.default.fileExists(atPath: testDir.path) {
      test = try imageFiles(in: testDir, role: "test images").sorted { $0.key < $1.key }.map {
        NamedImage(name: $0.key, image: try ImageFile.read(contentsOf: $0.value))
      }
    }
    let c = channels ?? ((samples.map(\.image) + test.map(\.image)).contains { $0.channels == 3 } ? 3 : 1)
    samples = samples.map { FolderSample(name: $0.name, image: $0.image.converted(channels: c), mask: $0.mask) }
    test = test.map { NamedImage(name: $0.name, image: $0.image.converted(channels: c)) }
    return FolderDataset(train: samples, test: test, classes: classes, channels: c)
  }

  /// The image and mask files of `directory`, matched by name, ordered by name. Throws naming
  /// images without a mask, masks without an image, empty folders and ambiguous names.
  public static func pairs(directory: URL) throws -> [FolderPair] {
    let imagesURL = directory.appendingPathComponent(imagesDirectory)
    let masksURL = directory.appendingPathComponent(masksDirectory)
    let images = try imageFiles(in: imagesURL, role: "images")
    let masks = try imageFiles(in: masksURL, role: "masks")
    try unmatched(images, against: masks, what: "image", other: masksDirectory)
    try unmatched(masks, against: images, what: "mask", other: imagesDirectory)
    return images.keys.sorted().map { FolderPair(name: $0, image: images[$0]!, mask: masks[$0]!) }
  }

  /// Reads one pair: the image as it is stored, the mask as class indices of the same size.
  public static func loadSample(_ pair: FolderPair, classes: Int) throws -> FolderSample {
    let image = try ImageFile.read(contentsOf: pair.image)
    let mask = try ImageFile.read(pair.mask, palette: .indices)
    guard mask.image.width == image.width, mask.image.height == image.height else {
      throw DataError(path: pair.mask.path, "is \(mask.image.width)x\(mask.image.height), but its image "
        + "\(imagesDirectory)/\(pair.image.lastPathComponent) is \(image.width)x\(image.height); they must be the same size")
    }
    return FolderSample(name: pair.name, image: image, mask: try classIndices(mask, path: pair.mask.path, classes: classes))
  }

  /// The samples as the trainer's slices: 8-bit images with the data set's channels (16-bit
  /// samples rounded to 8 bits, as `Image.converted(bitDepth:)`), labels the class indices.
  public func labelledSlices() -> [LabelledSlice] {
    train.map { s in
      let image = s.image.converted(channels: channels).converted(bitDepth: 8)
      return LabelledSlice(width: s.width, height: s.height, channels: image.channels,
                           image: image.samples.map { UInt8($0) }, label: s.mask)
    }
  }
}

// MARK: - Checks

extension FolderDataset {
  /// The PNG and TIFF files of `directory` by name without extension; hidden files and other
  /// extensions are ignored.
  static func imageFiles(in directory: URL, role: String) throws -> [String: URL] {
    guard isDirectory(directory) else {
      throw DataError(path: directory.path, "no such directory; expected the \(role) as PNG or TIFF files")
    }
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted()
    } catch {
      throw DataError(path: directory.path, "cannot list: \(error.localizedDescription)")
    }
    var files: [String: URL] = [:], others: [String] = []
    for name in names {
      let url = directory.appendingPathComponent(name)
      guard ImageFormat(url: url) != nil, !isDirectory(url) else {
        others.append(name)
        continue
      }
      let stem = url.deletingPathExtension().lastPathComponent
      if let first = files[stem] {
        throw DataError(path: url.path, "has the same name as \(first.lastPathComponent); each of the \(role) needs "
          + "a name of its own")
      }
      files[stem] = url
    }
    guard !files.isEmpty else {
      throw DataError(path: directory.path, "no PNG or TIFF files (.png, .tif, .tiff); expected the \(role)"
        + (others.isEmpty ? "" : ", found only \(others.count) other entr\(others.count == 1 ? "y" : "ies") "
          + "such as \(others[0])"))
    }
    return files
  }

  /// Throws naming the files of `files` (images or masks) that have no partner in `partners`.
  static func unmatched(_ files: [String: URL], against partners: [String: URL], what: String, other: String) throws {
    let lonely = files.keys.filter { partners[$0] == nil }.sorted()
    guard let first = lonely.first else { return }
    let more = lonely.dropFirst().prefix(5).map { files[$0]!.lastPathComponent }
    throw DataError(path: files[first]!.path, "has no \(what == "image" ? "mask" : "image"): \(other)/ holds no "
      + "\(first).png, \(first).tif or \(first).tiff"
      + (more.isEmpty ? "" : "; \(lonely.count - 1) more \(what)s lack one too: \(more.joined(separator: ", "))"
        + (lonely.count > 6 ? ", ..." : "")))
  }

  /// The class index of each pixel of a decoded mask (see the type's description).
  static func classIndices(_ decoded: DecodedImage, path: String, classes: Int) throws -> [UInt8] {
    let m = decoded.image
    func at(_ i: Int) -> String { "x \(i % m.width), y \(i / m.width)" }
    var values = m.samples
    if m.channels == 3 {
      let gray = { (i: Int) -> Bool in values[3 * i] == values[3 * i + 1] && values[3 * i] == values[3 * i + 2] }
      if let i = (0..<m.width * m.height).first(where: { !gray($0) }) {
        let colour = "(\(values[3 * i]), \(values[3 * i + 1]), \(values[3 * i + 2]))"
        throw DataError(path: path, "an RGB mask with colour \(colour) at \(at(i)); masks must be grayscale or "
          + "palette images of class indices (or 0/255)")
      }
      values = (0..<m.width * m.height).map { values[3 * $0] }
    }
    let marker = values.contains(UInt16(m.maxValue)) ? UInt16(m.maxValue) : 255
    if classes == 2 && !decoded.paletteIndices && values.contains(marker) {
      if let i = values.firstIndex(where: { $0 != 0 && $0 != marker }) {
        throw DataError(path: path, "value \(values[i]) at \(at(i)) in a binary mask (it holds \(marker)); "
          + "binary masks hold only 0 and \(marker)")
      }
      return values.map { $0 == 0 ? 0 : 1 }
    }
    if let i = values.firstIndex(where: { Int($0) >= classes }) {
      throw DataError(path: path, "value \(values[i]) at \(at(i)) is not a class: with \(classes) classes a mask holds "
        + "class indices 0...\(classes - 1)" + (classes == 2 ? " or is binary, 0 and 255" : ""))
    }
    return values.map { UInt8($0) }
  }
}
