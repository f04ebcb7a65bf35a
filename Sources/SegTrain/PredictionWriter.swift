import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Predicting image files

/// Writes, for each input image file (PNG or TIFF, any size, 8 or 16 bits; converted to the model's
/// channels: gray copied to RGB, RGB to its luma), the mask
/// `<name>-mask.png` of the input's size (255 = foreground for two classes, else class indices),
/// `<name>-overlay.png` (the classes tinted and outlined over the image's gray, for people), and with
/// `probabilities` `<name>-probabilities.tif` (one 16-bit page per class, 65535 = 1). A file
/// that exists before the run is written over only with `overwrite`, and an input never.
public struct PredictionWriter {
  public let predictor: TiledPredictor
  public let probabilities: Bool
  /// Whether files that existed before the run may be replaced (inputs are never replaced).
  public let overwrite: Bool

  /// A writer predicting with `model`, `batchSize` tiles at a time, compiled as `compile` says.
  public init(
    model: UNet, batchSize: Int, window: SlidingWindow, probabilities: Bool, overwrite: Bool = false, compile: CompileOptions? = nil
  ) throws {
    predictor = try TiledPredictor(model: model, batchSize: batchSize, window: window, compile: compile)
    self.probabilities = probabilities
    self.overwrite = overwrite
  }

  // MARK: - Names

  /// The name each input's outputs are written under, one per file and never two alike: the
  /// file's name without its extension, or with it where two inputs share that stem ("a.png",
  /// "a.tif"), and a number after it where even that repeats (equal names in two folders).
  public static func outputNames(_ files: [URL]) -> [String] {
    let stems = files.map { $0.deletingPathExtension().lastPathComponent }
    var stemCounts: [String: Int] = [:]
    for stem in stems { stemCounts[stem, default: 0] += 1 }
    let names = zip(files, stems).map { file, stem in stemCounts[stem]! > 1 ? file.lastPathComponent : stem }
    var nameCounts: [String: Int] = [:], seen: [String: Int] = [:]
    for name in names { nameCounts[name, default: 0] += 1 }
    return names.map { name in
      guard nameCounts[name]! > 1 else { return name }
      seen[name, default: 0] += 1
      return "\(name)-\(seen[name]!)"
    }
  }

  /// The files written for an input named `name` in `output`.
  public func outputFiles(name: String, in output: URL) -> [URL] {
    ["mask.png", "overlay.png"].map { output.appendingPathComponent("\(name)-\($0)") }
      + (probabilities ? [output.appendingPathComponent("\(name)-probabilities.tif")] : [])
  }

  /// Refuses, before anything is predicted, to write over an input, or over a file that exists
  /// already unless `overwrite`.
  public func checkTargets(_ targets: [URL], inputs: [URL] = []) throws {
    let inputPaths = Set(inputs.map { $0.standardizedFileURL.resolvingSymlinksInPath().path })
    for url in targets {
      let path = url.standardizedFileURL.resolvingSymlinksInPath().path
      if inputPaths.contains(path) {
        throw SettingError(.predictionOutput, value: url.deletingLastPathComponent().path, "would write over the input \(url.path); choose another folder")
      }
      if !overwrite, FileManager.default.fileExists(atPath: url.path) {
        throw SettingError(
          .predictionOutput, value: url.deletingLastPathComponent().path,
          "\(url.lastPathComponent) exists already and this run did not make it; pass \(Setting.overwrite) to replace such files, or choose another folder")
      }
    }
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

  /// Predicts `files` into `output` (created if missing) under `outputNames`; returns the files
  /// written, each once, that exist at the end. Checks every target first (`checkTargets`).
  @discardableResult
  public func write(_ files: [URL], to output: URL) throws -> [URL] {
    let names = PredictionWriter.outputNames(files)
    try checkTargets(names.flatMap { outputFiles(name: $0, in: output) }, inputs: files)
    var written: [URL] = []
    for (file, name) in zip(files, names) {
      let image = try ImageFile.read(contentsOf: file).converted(channels: predictor.inputChannels)
      written += try write(image, name: name, to: output)
    }
    var seen = Set<String>()
    return written.filter { seen.insert($0.path).inserted && FileManager.default.fileExists(atPath: $0.path) }
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
      throw DataError(path: output.path, "cannot create the output folder: \(FileProblem.describe(error, path: output.path, expectingFolder: true))")
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
