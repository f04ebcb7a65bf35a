import Foundation
import Testing

@testable import SegData

// MARK: - ISBI 2012 layout

@Suite struct ISBIDatasetTests {
  /// Writes a synthetic set of 3 training and 2 test slices of 32x32 into a fresh directory.
  func syntheticSet() throws -> URL {
    let dir = try DataFixture.scratchDirectory().appendingPathComponent("isbi")
    try ISBIDataset.writeSynthetic(directory: dir, size: 32, trainCount: 3, testCount: 2, seed: 7)
    return dir
  }

  /// Checks that loading `dir` throws a DataError about `file` whose reason contains `fragment`.
  func expectLoadError(_ dir: URL, file: String, _ fragment: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
    do {
      let set = try ISBIDataset.load(directory: dir)
      Issue.record("loaded \(set.train.count) slices, expected an error", sourceLocation: sourceLocation)
    } catch let error as DataError {
      #expect(error.path == dir.appendingPathComponent(file).path, "\(error)", sourceLocation: sourceLocation)
      #expect(error.reason.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    } catch {
      Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
  }

  @Test func syntheticRoundTrip() throws {
    let dir = try syntheticSet()
    defer { DataFixture.remove(dir.deletingLastPathComponent()) }
    let set = try ISBIDataset.load(directory: dir)
    #expect(set.train.count == 3 && set.test.count == 2)
    for (i, slice) in set.train.enumerated() {
      let want = SyntheticEM.slice(size: 32, seed: 7, index: UInt64(i))
      #expect(slice.width == 32 && slice.height == 32)
      #expect(slice.image == want.image && slice.label == want.label)
    }
    // Test slices continue the sequence after the training ones.
    #expect(set.test[1].pixels == SyntheticEM.slice(size: 32, seed: 7, index: 4).image)
    #expect(set.test.allSatisfy { $0.width == 32 && $0.height == 32 })
  }

  @Test func explicitSlicesRoundTrip() throws {
    let dir = try DataFixture.scratchDirectory()
    defer { DataFixture.remove(dir) }
    let image = DataFixture.page(7, 5, seed: 9)
    let label = (0..<35).map { UInt8($0 % 3 == 0 ? 0 : 1) }
    let train = [LabelledSlice(width: 7, height: 5, image: image.pixels, label: label)]
    try ISBIDataset.write(directory: dir, train: train, test: [DataFixture.page(4, 6)])
    // On disk the labels keep the ISBI convention, 0/255; loaded, they are class indices again.
    let pages = try TIFF.read(contentsOf: dir.appendingPathComponent("train-labels.tif"))
    #expect(pages.count == 1 && pages[0].pixels == label.map { $0 == 1 ? 255 : 0 })
    let set = try ISBIDataset.load(directory: dir)
    #expect(set.train.count == 1 && set.train[0].image == image.pixels && set.train[0].label == label)
    #expect(set.train[0].channels == 1 && set.train[0].binaryMask == pages[0].pixels)
    #expect(set.test == [DataFixture.page(4, 6)])
  }

  @Test func missingDirectoryAndFiles() throws {
    let nowhere = URL(fileURLWithPath: "/nonexistent-isbi-dir")
    #expect { try ISBIDataset.load(directory: nowhere) } throws: { error in
      guard let error = error as? DataError else { return false }
      return error.path == nowhere.path && error.reason.contains("no such directory")
        && error.reason.contains("train-volume.tif")
    }
    for (file, expected) in [("train-volume.tif", "the training images"),
                             ("train-labels.tif", "the training labels"), ("test-volume.tif", "the test images")] {
      let dir = try syntheticSet()
      defer { DataFixture.remove(dir.deletingLastPathComponent()) }
      try FileManager.default.removeItem(at: dir.appendingPathComponent(file))
      expectLoadError(dir, file: file, "missing; expected \(expected)")
    }
  }

  @Test func pageCountAndSizeMismatches() throws {
    let dir = try syntheticSet()
    defer { DataFixture.remove(dir.deletingLastPathComponent()) }
    let labels = dir.appendingPathComponent("train-labels.tif")
    let black = GrayImage(width: 32, height: 32, pixels: .init(repeating: 0, count: 32 * 32))
    try TIFF.write([black, black], to: labels)
    expectLoadError(dir, file: "train-labels.tif", "2 pages, but train-volume.tif has 3")
    let small = GrayImage(width: 16, height: 32, pixels: .init(repeating: 0, count: 16 * 32))
    try TIFF.write([black, small, black], to: labels)
    expectLoadError(dir, file: "train-labels.tif", "page 1 is 16x32, but page 1 of train-volume.tif is 32x32")
  }

  @Test func nonBinaryLabels() throws {
    let dir = try syntheticSet()
    defer { DataFixture.remove(dir.deletingLastPathComponent()) }
    var pixels = [UInt8](repeating: 255, count: 32 * 32)
    pixels[2 * 32 + 3] = 128
    let black = GrayImage(width: 32, height: 32, pixels: .init(repeating: 0, count: 32 * 32))
    try TIFF.write([black, GrayImage(width: 32, height: 32, pixels: pixels), black],
                   to: dir.appendingPathComponent("train-labels.tif"))
    expectLoadError(dir, file: "train-labels.tif", "page 1: label value 128 at x 3, y 2")

    // Writing refuses such labels too, rather than making a set that will not load.
    var classes = [UInt8](repeating: 1, count: 32 * 32)
    classes[2 * 32 + 3] = 2
    let bad = [LabelledSlice(width: 32, height: 32, image: black.pixels, label: classes)]
    #expect { try ISBIDataset.write(directory: dir, train: bad, test: [black]) } throws: {
      "\($0)".contains("class 2 at x 3, y 2")
    }
  }

  @Test func corruptTestVolumeIsNamed() throws {
    let dir = try syntheticSet()
    defer { DataFixture.remove(dir.deletingLastPathComponent()) }
    try Data("not a tiff".utf8).write(to: dir.appendingPathComponent("test-volume.tif"))
    expectLoadError(dir, file: "test-volume.tif", "not a readable TIFF file: libtiff: Not a TIFF")
  }
}
