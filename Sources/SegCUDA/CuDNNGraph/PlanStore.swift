import Foundation

// MARK: - Plans kept between runs

/// The plans autotuning chose, kept on disk as cuDNN's plan JSON keyed by `ConvGraphKey`, one file
/// per cuDNN version and GPU (`cudnn-plans-92801-NVIDIA-H200-sm90.json`), so that a second run
/// loads the fastest plan of each shape instead of timing them all again. A file that cannot be
/// read is ignored (and replaced on the next save): it only costs the timing.
final class PlanStore: @unchecked Sendable {
  /// One stored plan.
  struct Entry: Codable {
    var key: ConvGraphKey
    var plan: String
    /// Milliseconds the plan took when it was timed, for reports.
    var milliseconds: Double
  }

  private struct File: Codable {
    var cudnnVersion: Int
    var device: String
    var plans: [Entry]
  }

  /// The file, or nil to keep plans in memory only.
  let url: URL?
  let cudnnVersion: Int
  let device: String
  private(set) var entries: [ConvGraphKey: Entry] = [:]
  private let lock = NSLock()

  /// The store for `cudnnVersion` and `device` (`CuDNNDeviceDescription.cacheName`) in `folder`.
  init(folder: URL?, cudnnVersion: Int, device: String) {
    self.cudnnVersion = cudnnVersion
    self.device = device
    url = folder?.appendingPathComponent("cudnn-plans-\(cudnnVersion)-\(device).json")
    guard let url, let data = try? Data(contentsOf: url),
      let file = try? JSONDecoder().decode(File.self, from: data),
      file.cudnnVersion == cudnnVersion, file.device == device
    else { return }
    for e in file.plans { entries[e.key] = e }
  }

  /// The stored plan JSON of `key`.
  func plan(_ key: ConvGraphKey) -> String? { lock.withLock { entries[key]?.plan } }

  /// Records `plan` for `key` and rewrites the file (atomically); a failure to write is reported
  /// once in the returned message and leaves the plans in memory.
  @discardableResult
  func store(_ key: ConvGraphKey, plan: String, milliseconds: Double) -> String? {
    lock.withLock {
      entries[key] = Entry(key: key, plan: plan, milliseconds: milliseconds)
      guard let url else { return nil }
      let file = File(cudnnVersion: cudnnVersion, device: device, plans: entries.values.sorted { $0.key.description < $1.key.description })
      do {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(file).write(to: url, options: .atomic)
        return nil
      } catch {
        return "cudnn-graph: could not save the timed plans to \(url.path) (\(error)); set UNET_CUDNN_PLAN_CACHE to a writable folder or to off"
      }
    }
  }
}
