import Foundation
import Testing

@testable import SegData

// MARK: - Fixtures

/// A folder data set under construction in a scratch directory.
struct FolderFixture {
  let root: URL

  init() throws {
    root = try DataFixture.scratchDirectory()
    for sub in ["images", "masks"] {
      try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
  }

  func url(_ path: String) -> URL { root.appendingPathComponent(path) }

  /// Writes `image` to `path` (PNG or TIFF by extension), creating its directory.
  func put(_ path: String, _ image: Image) throws {
    try FileManager.default.createDirectory(at: url(path).deletingLastPathComponent(), withIntermediateDirectories: true)
    try ImageFile.write(image, to: url(path))
  }

  func put(_ path: String, bytes: [UInt8]) throws { try Data(bytes).write(to: url(path)) }

  /// A `width` x `height` 8-bit mask with `values` repeated.
  static func mask(_ width: Int, _ height: Int, _ values: [UInt16], bitDepth: Int = 8) -> Image {
    try! Image(width: width, height: height, channels: 1, bitDepth: bitDepth,
               samples: (0..<width * height).map { values[$0 % values.count] })
  }

  /// Loading throws a DataError about `path` (relative to the root, "" for the root itself)
  /// whose reason contains `fragment`.
  func expectLoadError(_ path: String, _ fragment: String, classes: Int = 2, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
      let set = try FolderDataset.load(directory: root, classes: classes)
      Issue.record("loaded \(set.train.count) samples, expected an error", sourceLocation: sourceLocation)
    } catch let error as DataError {
      #expect(error.path == (path.isEmpty ? root.path : url(path).path), "\(error)", sourceLocation: sourceLocation)
      #expect(error.reason.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    } catch {
      Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
  }
}

// MARK: - Loading

@Suite struct FolderDatasetTests {
  @Test func mixedFormatsSizesDepthsAndMaskKinds() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    let a = DataFixture.ramp(7, 5), b = DataFixture.ramp(9, 4, bitDepth: 16, k: 4099), c = DataFixture.ramp(6, 6, channels: 3, k: 3)
    try f.put("images/a.png", a)
    try f.put("masks/a.tif", FolderFixture.mask(7, 5, [0, 255, 255]))  // binary
    try f.put("images/b.tif", b)
    try f.put("masks/b.png", FolderFixture.mask(9, 4, [1, 0]))  // class indices
    try f.put("images/c.PNG", c)
    try f.put("masks/c.tiff", FolderFixture.mask(6, 6, [65535, 0], bitDepth: 16))  // binary, 16-bit
    try f.put("test/t.png", DataFixture.ramp(3, 2))
    try f.put("images/.DS_Store", bytes: [0])
    try f.put("masks/README.txt", bytes: Array("not an image".utf8))

    #expect(try DatasetKind.detect(directory: f.root) == .folder)
    let set = try FolderDataset.load(directory: f.root)
    #expect(set.train.map(\.name) == ["a", "b", "c"] && set.channels == 3 && set.classes == 2)
    #expect(set.train.map { "\($0.width)x\($0.height)" } == ["7x5", "9x4", "6x6"])
    #expect(set.train[0].image == a.converted(channels: 3) && set.train[1].image == b.converted(channels: 3))
    #expect(set.train[2].image == c)
    #expect(set.train[0].mask == (0..<35).map { $0 % 3 == 0 ? 0 : 1 })
    #expect(set.train[1].mask == (0..<36).map { $0 % 2 == 0 ? 1 : 0 })
    #expect(set.train[2].mask == (0..<36).map { $0 % 2 == 0 ? 1 : 0 })
    #expect(set.test.map(\.name) == ["t"] && set.test[0].image == DataFixture.ramp(3, 2).converted(channels: 3))

    // Slices keep the set's channels (RGB interleaved, 16-bit rounded to 8) and the class indices.
    let slices = set.labelledSlices()
    #expect(slices.allSatisfy { $0.channels == 3 })
    #expect(slices[0].image == a.converted(channels: 3).samples.map { UInt8($0) } && slices[0].label == set.train[0].mask)
    #expect(slices[1].image == b.converted(channels: 3).converted(bitDepth: 8).samples.map { UInt8($0) })
    #expect(slices[2].image == c.samples.map { UInt8($0) } && slices[2].label == set.train[2].mask)
    #expect(slices[2].grayImage == c.grayImage())

    let gray = try FolderDataset.load(directory: f.root, channels: 1)
    #expect(gray.channels == 1 && gray.train[2].image == c.converted(channels: 1) && gray.train[0].image == a)
    let graySlices = gray.labelledSlices()
    #expect(graySlices[0].channels == 1 && graySlices[0].image == a.grayImage().pixels && graySlices[2].image == c.grayImage().pixels)
  }

  @Test func classIndicesForMoreClasses() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    try f.put("images/x.tif", DataFixture.ramp(4, 4))
    try f.put("masks/x.png", FolderFixture.mask(4, 4, [0, 1, 2, 3]))
    let set = try FolderDataset.load(directory: f.root, classes: 4)
    #expect(set.channels == 1 && set.train[0].mask == (0..<16).map { UInt8($0 % 4) })
    f.expectLoadError("masks/x.png", "value 3 at x 3, y 0 is not a class: with 3 classes a mask holds class indices 0...2", classes: 3)
    f.expectLoadError("", "1 classes; a folder data set has 2 to 256", classes: 1)
    // With more than two classes 255 is not "binary", it is out of range.
    try f.put("masks/x.png", FolderFixture.mask(4, 4, [0, 255]))
    f.expectLoadError("masks/x.png", "value 255 at x 1, y 0 is not a class", classes: 4)
  }

  // MARK: - Bad input

  @Test func emptyFoldersAndMissingPartners() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    f.expectLoadError("images", "no PNG or TIFF files (.png, .tif, .tiff); expected the images")
    try f.put("images/notes.txt", bytes: [65])
    f.expectLoadError("images", "found only 1 other entry such as notes.txt")
    try f.put("images/a.png", DataFixture.ramp(4, 4))
    f.expectLoadError("masks", "no PNG or TIFF files")
    try f.put("masks/a.png", FolderFixture.mask(4, 4, [0]))
    for name in ["b", "c", "d"] { try f.put("images/\(name).tif", DataFixture.ramp(4, 4)) }
    f.expectLoadError("images/b.tif", "has no mask: masks/ holds no b.png, b.tif or b.tiff; 2 more images lack one too: c.tif, d.tif")
    for name in ["b", "c", "d"] { try f.put("masks/\(name).png", FolderFixture.mask(4, 4, [0])) }
    try f.put("masks/e.png", FolderFixture.mask(4, 4, [0]))
    f.expectLoadError("masks/e.png", "has no image: images/ holds no e.png, e.tif or e.tiff")
    try f.put("images/e.png", DataFixture.ramp(4, 4))
    try f.put("images/e.tif", DataFixture.ramp(4, 4))
    f.expectLoadError("images/e.tif", "has the same name as e.png")
    try FileManager.default.removeItem(at: f.url("images/e.tif"))
    #expect(try FolderDataset.pairs(directory: f.root).map(\.name) == ["a", "b", "c", "d", "e"])
    try FileManager.default.removeItem(at: f.url("masks"))
    f.expectLoadError("masks", "no such directory; expected the masks as PNG or TIFF files")
    #expect { try FolderDataset.load(directory: f.url("none")) } throws: {
      "\($0)" == "\(f.url("none").path): no such directory; expected a folder data set with images/ and masks/"
    }
  }

  @Test func badMasks() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    try f.put("images/a.png", DataFixture.ramp(5, 4))
    try f.put("masks/a.png", FolderFixture.mask(4, 5, [0]))
    f.expectLoadError("masks/a.png", "is 4x5, but its image images/a.png is 5x4; they must be the same size")
    try f.put("masks/a.png", FolderFixture.mask(5, 4, [0, 255, 0, 0, 0, 0, 0, 128]))
    f.expectLoadError("masks/a.png", "value 128 at x 2, y 1 in a binary mask (it holds 255); binary masks hold only 0 and 255")
    try f.put("masks/a.png", FolderFixture.mask(5, 4, [0, 1, 2]))
    f.expectLoadError("masks/a.png", "value 2 at x 2, y 0 is not a class: with 2 classes a mask holds class indices 0...1 or is binary, 0 and 255")
    try f.put("masks/a.png", try Image(width: 5, height: 4, channels: 3, bitDepth: 8,
                                       samples: (0..<60).map { $0 == 4 ? 9 : 0 }))
    f.expectLoadError("masks/a.png", "an RGB mask with colour (0, 9, 0) at x 1, y 0")
    // Gray RGB masks are fine.
    try f.put("masks/a.png", FolderFixture.mask(5, 4, [0, 255]).converted(channels: 3))
    #expect(try FolderDataset.load(directory: f.root).train[0].mask == (0..<20).map { UInt8($0 % 2) })
  }

  @Test func unreadableFiles() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    try f.put("masks/a.png", FolderFixture.mask(4, 4, [0]))
    try f.put("images/a.png", bytes: Array("hello".utf8))
    f.expectLoadError("images/a.png", "not a PNG or TIFF file: it starts with bytes 0x68 0x65 0x6C 0x6C")
    try f.put("images/a.png", bytes: [])
    f.expectLoadError("images/a.png", "empty file")
    let png = [UInt8](try PNG.encode(DataFixture.ramp(4, 4)))
    try f.put("images/a.png", bytes: Array(png.prefix(png.count - 20)))
    f.expectLoadError("images/a.png", "libpng")
    let tiff = [UInt8](try TIFF.encode([DataFixture.ramp(4, 4)]))
    try f.put("images/a.png", bytes: Array(tiff.prefix(30)))
    f.expectLoadError("images/a.png", "libtiff")
    try f.put("images/a.png", bytes: [UInt8](try TIFF.encode([DataFixture.ramp(4, 4), DataFixture.ramp(4, 4)])))
    f.expectLoadError("images/a.png", "2 pages; expected a single image per file")
  }

  // MARK: - Detection

  @Test func detection() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    #expect(try DatasetKind.detect(directory: f.root) == .folder)
    try FileManager.default.removeItem(at: f.url("masks"))
    #expect { try DatasetKind.detect(directory: f.root) } throws: {
      "\($0)" == "\(f.root.path): not a data set: looked for the ISBI 2012 files train-volume.tif, train-labels.tif, "
        + "test-volume.tif (found none) and for the folders images/ and masks/ (found images/)"
    }
    try ISBIDataset.writeSynthetic(directory: f.root, size: 8, trainCount: 1, testCount: 1)
    #expect(try DatasetKind.detect(directory: f.root) == .isbi)
    try FileManager.default.removeItem(at: f.url("test-volume.tif"))
    #expect { try DatasetKind.detect(directory: f.root) } throws: {
      "\($0)".contains("(found train-volume.tif, train-labels.tif)")
    }
    #expect { try DatasetKind.detect(directory: f.url("nothing")) } throws: { "\($0)".contains("no such directory") }
    #expect { try DatasetKind.detect(directory: f.url("train-volume.tif")) } throws: { "\($0)".contains("not a directory") }
  }
}

// MARK: - Palette masks

@Suite(.enabled(if: DataFixture.hasPillow, "needs Python with numpy and Pillow: run `bash scripts/setup.sh --tests`"))
struct FolderPaletteMaskTests {
  @Test func paletteMasksAreReadAsIndices() throws {
    let f = try FolderFixture()
    defer { DataFixture.remove(f.root) }
    try f.put("images/a.png", DataFixture.ramp(5, 4))
    try f.put("images/b.png", DataFixture.ramp(5, 4))
    try DataFixture.runPython(pythonRamps + """
      from PIL import Image
      p = Image.fromarray((np.arange(20).reshape(4, 5) % 3).astype(np.uint8), 'P')
      p.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
      p.save(f'{d}/masks/a.png')
      p.save(f'{d}/masks/b.png', transparency=0)
      """, in: f.root)
    let set = try FolderDataset.load(directory: f.root, classes: 3)
    for s in set.train { #expect(s.mask == (0..<20).map { UInt8($0 % 3) }, "\(s.name)") }
    // The colours are what an image reader sees.
    #expect(Array(try PNG.read(contentsOf: f.url("masks/a.png")).samples.prefix(9)) == [0, 0, 0, 255, 0, 0, 0, 255, 0])
  }
}
