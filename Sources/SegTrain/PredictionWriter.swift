import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Predicting image files

/// Writes, for each input image file (PNG or TIFF, any size, 8 or 16 bits; converted to the model's
/// channels: gray copied to RGB, RGB to its luma), the mask
/// `<name>-mask.png` of the input's size (255 = foreground for two classes, else class indices),
/// `<name>-overlay.png` (the classes tinted and outlined over the image's gray, for people), and with
/// `probabilities` `<name>-probabilities.tif` (one 16-bit page per class, 65535 = 1).
public struct PredictionWriter {
  public let predictor: TiledPredictor
  public let probabilities: Bool

  public init(model: UNet, batchSize: Int, window: SlidingWindow, probabilities: Bool) throws {
    predictor = try TiledPredictor(model: model, batchSize: batchSize, window: window)
    self.probabilities = probabilities
  }

  /// The image files named by `paths`: files as given, folders by their PNG and TIFF files in name
  /// order. Throws `SettingError` naming the prediction inputs and the path that is missing or
  /// holds no image.
  public static func inputFiles(_ paths: [String]) throws -> [URL] {
    var files: [URL] = []
    for path in paths {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw SettingError(.predictionInputs, value: path, "no such file or folder")
      }
      guard isDirectory.boolValue else {
        files.append(URL(fileURLWithPath: path))
        continue
      }
      let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
      let images = names.filter { ["png", "tif", "tiff"].contains(($0 as NSString).pathExtension.lowercased()) && !$0.hasPrefix(".") }
      guard !images.isEmpty else { throw SettingError(.predictionInputs, value: path, "the folder holds no .png, .tif or .tiff file") }
      files += images.sorted().map { URL(fileURLWithPath: path).appendingPathComponent($0) }
    }
    return files
  }

  /// Predicts `files` into `output` (created if missing); returns the files written.
  @discardableResult
  public func write(_ files: [URL], to output: URL) throws -> [URL] {
    var written: [URL] = []
    for file in files {
      let image = try ImageFile.read(contentsOf: file).converted(channels: predictor.inputChannels)
      written += try write(image, name: file.deletingPathExtension().lastPathComponent, to: output)
    }
    return written
  }

  /// Predicts one 8-bit grayscale image and writes its files as `<name>-...` in `output`.
  public func write(_ image: GrayImage, name: String, to output: URL) throws -> [URL] {
    try write(Image(image), name: name, to: output)
  }

  /// Predicts one image (the model's channels, 8 or 16 bits) and writes its files as `<name>-...`
  /// in `output` (created if missing).
  public func write(_ image: Image, name: String, to output: URL) throws -> [URL] {
    do {
      try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
    } catch {
      throw DataError(path: output.path, "cannot create the output folder: \(error.localizedDescription)")
    }
    let p = try predictor.predict(image)
    let binary = p.classes == 2
    let mask = p.classIndices.map { UInt16(binary ? ($0 == 1 ? 255 : 0) : $0) }
    let maskURL = output.appendingPathComponent("\(name)-mask.png")
    try ImageFile.write(Image(width: p.width, height: p.height, channels: 1, bitDepth: 8, samples: mask), to: maskURL)
    let overlay = try Overlay.render(image: image.grayImage(), classes: p.classIndices)
    let overlayURL = output.appendingPathComponent("\(name)-overlay.png")
    try ImageFile.write(Image(width: p.width, height: p.height, channels: 3, bitDepth: 8, samples: overlay.map(UInt16.init)), to: overlayURL)
    var urls = [maskURL, overlayURL]
    if probabilities {
      let pages = try (0..<p.classes).map { c in
        try Image(width: p.width, height: p.height, channels: 1, bitDepth: 16, samples: (0..<(p.width * p.height)).map {
          UInt16((min(max(p.probabilities[$0 * p.classes + c], 0), 1) * 65535).rounded())
        })
      }
      let url = output.appendingPathComponent("\(name)-probabilities.tif")
      try TIFF.write(pages, to: url)
      urls.append(url)
    }
    return urls
  }
}
