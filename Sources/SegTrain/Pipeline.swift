import Foundation
import SegCore
import SegData
import SegNN

// MARK: - Options

/// How training tiles are cut from the slices.
public enum InputMode: String, Sendable, CaseIterable {
  /// The paper's: output windows inside the slice, input tiles around them mirrored at the border.
  case overlapTile = "overlap_tile"
  /// NVIDIA's: the whole slice resized to the output size, then zero-padded to the input size.
  case resizePad = "resize_pad"
}

/// What a `TrainingPipeline` produces and how.
public struct PipelineOptions: Sendable {
  public var batchSize = 1
  /// Seeds the shuffles, the window positions and the augmentation.
  public var seed: UInt64 = 0
  /// nil: no augmentation.
  public var augmentation: AugmentationOptions?
  public var inputMode = InputMode.overlapTile
  /// Whether each epoch visits the samples in a new order (seeded by seed and epoch).
  public var shuffle = true
  /// Whether overlap-tile windows move randomly within their part of the slice each epoch; off,
  /// they sit on a fixed grid from edge to edge.
  public var jitter = true
  /// Threads preparing batches; 0 prepares each batch on the caller's thread when it is asked for.
  public var workers = ProcessInfo.processInfo.activeProcessorCount
  /// Batches prepared ahead at most (taken or not), so memory stays bounded.
  public var prefetch = 3
  /// This process's part of each epoch: samples rank, rank + worldSize, ... of the shuffled order.
  public var rank = 0
  public var worldSize = 1
  public init() {}
}

/// A pipeline that cannot give a batch (its settings throw `SettingError` instead).
public enum PipelineError: Error, CustomStringConvertible, Sendable {
  /// `next()` after `stop()`.
  case stopped
  /// The pipeline was given no slices to cut tiles from.
  case noTrainingSlices

  public var description: String {
    switch self {
    case .stopped: return "pipeline: stopped"
    case .noTrainingSlices: return "pipeline: no training slices"
    }
  }
}

// MARK: - Samples and batches

/// One training sample: a slice, the top-left corner of its output window (overlap-tile; 0, 0 for
/// resize-pad), the epoch and the sample's index in the data set's sample list.
public struct PipelineSample: Hashable, Sendable {
  public var slice, x, y: Int
  public var epoch: Int
  public var id: Int
}

/// A batch on the host: images [N,S,S,C] and one-hot targets [N,S',S',K], row-major.
public struct HostBatch: Sendable {
  /// The batch's number in this rank's stream (0, 1, ...).
  public let index: Int
  public let images: [Float]
  public let imageShape: [Int]
  public let targets: [Float]
  public let targetShape: [Int]
  public let samples: [PipelineSample]

  /// The batch as tensors on `backend`.
  public func tensors(on backend: any Backend) throws -> (Tensor, Tensor) {
    (try Tensor(shape: Shape(imageShape), floats: images, on: backend),
     try Tensor(shape: Shape(targetShape), floats: targets, on: backend))
  }
}

// MARK: - Pipeline

/// Training batches from labelled slices: each epoch is every (slice, window) sample once, in an
/// order seeded by (seed, epoch), split between ranks; samples are cut (`TileSampler`), augmented
/// with choices drawn from (seed, epoch, sample), and batched by a pool of worker threads into a
/// bounded prefetch queue. Batch `i` depends only on the options and `i`, never on thread timing.
/// Batches run on across epochs (a batch may hold the end of one and the start of the next).
/// Dropping the pipeline, or `stop()`, ends and joins its threads.
public final class TrainingPipeline {
  public let options: PipelineOptions
  private let maker: BatchMaker
  private let queue: PrefetchQueue

  /// Starts the workers, the first batch being `firstBatch` (e.g. the step a run resumes at).
  /// Throws naming the option when the options, slices and model cannot work together.
  public init(slices: [LabelledSlice], config: UNetConfig, options: PipelineOptions, firstBatch: Int = 0) throws {
    maker = try BatchMaker(slices: slices, config: config, options: options)
    self.options = options
    queue = PrefetchQueue(first: firstBatch, capacity: options.prefetch, workers: options.workers)
    let (queue, maker) = (queue, maker)
    for i in 0..<options.workers {
      do {
        try WorkerThread.start(name: "unet-data-\(i)", workers: options.workers) { queue.work(maker.batch) }
      } catch {
        // The workers that did start leave their loop; those that did not are no longer waited for.
        queue.abandon(options.workers - i)
        queue.stop()
        throw error
      }
    }
  }

  deinit { stop() }

  /// Samples per epoch on this rank (the epoch's samples divided by worldSize, rounded down).
  public var samplesPerEpoch: Int { maker.perRank }
  /// The counters of the worker pool; they stay readable after the pipeline is gone.
  public var monitor: PipelineMonitor { PipelineMonitor(queue) }

  /// The next batch, waiting for a worker if none is ready. Throws once stopped.
  public func next() throws -> HostBatch {
    if options.workers == 0 { return maker.batch(queue.takeIndex()) }
    guard let b = queue.take() else { throw PipelineError.stopped }
    return b
  }

  /// Batch `index` computed on the caller's thread, as the workers compute it.
  public func batch(_ index: Int) -> HostBatch { maker.batch(index) }

  /// Stops the workers and waits until every one has returned.
  public func stop() { queue.stop() }
}

// MARK: - Making batches

/// Everything a batch depends on; immutable but for a cache of shuffled epochs.
final class BatchMaker: @unchecked Sendable {
  let slices: [LabelledSlice]
  let options: PipelineOptions
  let inputSize, outputSize, classes, channels: Int
  /// The data set's samples: (slice, window cell along x, along y, cells along x, along y).
  let cells: [(slice: Int, cx: Int, cy: Int, nx: Int, ny: Int)]
  let perRank: Int
  private let lock = NSLock()
  private var orders: [Int: [Int]] = [:]

  init(slices: [LabelledSlice], config: UNetConfig, options o: PipelineOptions) throws {
    guard !slices.isEmpty else { throw PipelineError.noTrainingSlices }
    guard o.batchSize >= 1 else { throw SettingError(.batchSize, value: o.batchSize, "must be at least 1") }
    guard o.workers >= 0 else { throw SettingError(.workers, value: o.workers, "must be 0 (no threads) or more") }
    guard o.prefetch >= 1 else { throw SettingError(.prefetch, value: o.prefetch, "must be at least 1 batch") }
    guard o.worldSize >= 1, (0..<o.worldSize).contains(o.rank) else {
      throw SettingError(.rank, value: o.rank, "must be in 0..<\(o.worldSize) (the number of processes)")
    }
    try o.augmentation?.validate()
    let o2 = config.outputSize
    if o.inputMode == .overlapTile {
      _ = try TileSampler(slices: slices, config: config)  // checks sizes and labels
    } else {
      try TileSampler.checkLabels(slices, classes: config.classes)
      try TileSampler.checkChannels(slices, channels: config.inputChannels)
    }
    var cells: [(Int, Int, Int, Int, Int)] = []
    for (s, sl) in slices.enumerated() {
      let nx = o.inputMode == .overlapTile ? (sl.width + o2 - 1) / o2 : 1
      let ny = o.inputMode == .overlapTile ? (sl.height + o2 - 1) / o2 : 1
      for cy in 0..<ny { for cx in 0..<nx { cells.append((s, cx, cy, nx, ny)) } }
    }
    perRank = cells.count / o.worldSize
    guard perRank >= 1 else {
      throw SettingError(.rank, value: o.rank, "\(cells.count) samples per epoch cannot be shared by \(o.worldSize) processes")
    }
    (self.slices, options, self.cells) = (slices, o, cells.map { (slice: $0.0, cx: $0.1, cy: $0.2, nx: $0.3, ny: $0.4) })
    (inputSize, outputSize, classes, channels) = (config.inputSize, o2, config.classes, config.inputChannels)
  }

  /// Batch `index`: this rank's samples index * N ..< (index + 1) * N of its endless stream.
  func batch(_ index: Int) -> HostBatch {
    let n = options.batchSize
    var assembler = BatchAssembler(count: n, inputSize: inputSize, channels: channels, outputSize: outputSize, classes: classes)
    var samples: [PipelineSample] = []
    for b in 0..<n {
      let t = index * n + b
      let (epoch, j) = (t / perRank, t % perRank)
      let id = order(epoch)[j * options.worldSize + options.rank]
      var rng = CounterRandom(seed: options.seed ^ 0xA06E_0000_0000_0000, stream: UInt64(epoch) << 32 | UInt64(id))
      let sample = place(id, epoch: epoch, &rng)
      let (image, label) = cut(sample, &rng)
      assembler.put(b, image: image, label: label)
      samples.append(sample)
    }
    return HostBatch(index: index, images: assembler.images, imageShape: assembler.imageShape,
                     targets: assembler.targets, targetShape: assembler.targetShape, samples: samples)
  }

  /// The samples' ids in epoch `epoch`'s order (Fisher-Yates from (seed, epoch)); recent epochs
  /// are kept, as consecutive batches share them.
  func order(_ epoch: Int) -> [Int] {
    lock.lock()
    defer { lock.unlock() }
    if let o = orders[epoch] { return o }
    var order = Array(0..<cells.count)
    if options.shuffle {
      var rng = CounterRandom(seed: options.seed ^ 0x5F0F_F1E5_0000_0000, stream: UInt64(epoch))
      for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(i + 1)) }
    }
    if orders.count >= 4, let oldest = orders.keys.min() { orders[oldest] = nil }
    orders[epoch] = order
    return order
  }

  /// The sample's window: the cell's part of the slice's window positions, a random position in it
  /// with jitter, else the cells spread evenly from edge to edge.
  private func place(_ id: Int, epoch: Int, _ rng: inout CounterRandom) -> PipelineSample {
    let c = cells[id]
    let sl = slices[c.slice]
    func position(_ cell: Int, _ count: Int, _ length: Int) -> Int {
      let range = length - outputSize + 1  // positions 0..<range
      if options.jitter {
        let lo = cell * range / count, hi = (cell + 1) * range / count
        return lo + rng.nextInt(max(hi - lo, 1))
      }
      return count > 1 ? (cell * (range - 1) + (count - 1) / 2) / (count - 1) : (range - 1) / 2
    }
    guard options.inputMode == .overlapTile else { return PipelineSample(slice: c.slice, x: 0, y: 0, epoch: epoch, id: id) }
    let x = position(c.cx, c.nx, sl.width), y = position(c.cy, c.ny, sl.height)
    return PipelineSample(slice: c.slice, x: x, y: y, epoch: epoch, id: id)
  }

  /// The sample's image (S x S x C) and label (S' x S'), augmented when the options say so.
  private func cut(_ s: PipelineSample, _ rng: inout CounterRandom) -> (ImageTile, LabelTile) {
    let sl = slices[s.slice]
    let plan = options.augmentation?.draw(&rng) ?? AugmentationPlan()
    let out = (height: outputSize, width: outputSize)
    switch options.inputMode {
    case .overlapTile:
      let image = TileSampler.imageTile(sl, x: s.x, y: s.y, window: outputSize, size: inputSize)
      // Moved pixels may come from anywhere in the input tile, so the label is cut as large.
      let labelSize = plan.isGeometricIdentity ? outputSize : inputSize
      let label = TileSampler.labelTile(sl, x: s.x, y: s.y, window: outputSize, size: labelSize)
      return Augmentation.apply(plan, image: image, label: label, labelSize: out)
    case .resizePad:
      let (image, label) = TileSampler.resizePadTiles(sl, outputSize: outputSize, inputSize: inputSize)
      return Augmentation.apply(plan, image: image, label: label, labelSize: out)
    }
  }
}
