import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Loaded data

/// Labelled slices and unlabelled test images, from an ISBI stack, an images/ + masks/ folder, or
/// generated, all with `channels` channels.
public struct RunData {
  /// Every labelled slice, before the fold split.
  public var train: [LabelledSlice]
  /// Unlabelled images for predict, named as their masks will be.
  public var test: [(name: String, image: Image)]
  /// Test images come from an ISBI test volume (predictions go to one TIFF stack).
  public var isStack: Bool
  /// Channels of every training slice and test image: 1 or 3.
  public var channels: Int
}

// MARK: - Data source

/// The run's data set as the settings name it (`dataDir`, `dataset`, the synthetic set's size and
/// seed) and its cross-validation split (`fold`, `folds`).
public struct RunDataSource {
  /// The run's settings: data directory and layout, synthetic set, seed, fold.
  public let settings: RunSettings

  /// The data of `settings`.
  public init(settings: RunSettings) { self.settings = settings }

  /// The data with `channels` channels (gray copied to RGB, RGB to luma); nil keeps a folder data
  /// set's own (3 when any image is RGB), and gray for the others. A folder's masks are read as
  /// the model's `classes`.
  public func load(channels: Int?, classes: Int) throws -> RunData {
    let s = settings
    var data: RunData
    if let dir = s.dataDir, try s.dataset ?? DatasetKind.detect(directory: dir) == .folder {
      let set = try FolderDataset.load(directory: dir, classes: classes, channels: channels)
      return RunData(train: set.labelledSlices(), test: set.test.map { ($0.name, $0.image) }, isStack: false, channels: set.channels)
    } else if let dir = s.dataDir {
      let set = try ISBIDataset.load(directory: dir)
      data = RunData(train: set.train, test: try set.test.enumerated().map { ("test-\($0.offset)", try Image($0.element)) },
                     isStack: true, channels: 1)
    } else {
      let seed = s.training.seed
      let test = try (0..<s.syntheticTestSlices).map { i -> (String, Image) in
        let sl = SyntheticEM.slice(size: s.syntheticSize, seed: seed, index: UInt64(s.syntheticSlices + i))
        return ("test-\(i)", try Image(sl.grayImage))
      }
      data = RunData(train: SyntheticEM.generate(count: s.syntheticSlices, size: s.syntheticSize, seed: seed), test: test,
                     isStack: true, channels: 1)
    }
    guard let channels, channels != data.channels else { return data }
    data.train = data.train.map { $0.converted(channels: channels) }
    data.test = data.test.map { ($0.name, $0.image.converted(channels: channels)) }
    data.channels = channels
    return data
  }

  /// The training and validation slices: fold `fold` of `folds` held out (shuffled by the seed),
  /// or, without a fold, every slice for both, as the reference.
  public func split(_ slices: [LabelledSlice]) throws -> (train: [LabelledSlice], validation: [LabelledSlice]) {
    guard let fold = settings.fold else { return (slices, slices) }
    let (train, validation) = try CrossValidation.split(count: slices.count, folds: settings.folds, fold: fold, seed: settings.training.seed)
    return (train.map { slices[$0] }, validation.map { slices[$0] })
  }
}
