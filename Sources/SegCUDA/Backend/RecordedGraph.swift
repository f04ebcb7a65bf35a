import Foundation
import SegCore

// MARK: - What a recording device records

/// One request the backend made of a device, as a recording device keeps it in a capture or in
/// its log: enough to run it again.
public enum RecordedRequest: @unchecked Sendable {
  case launch(KernelHandle, count: Int, arguments: [KernelArgument])
  /// A vendor library's call (cuDNN), counted as one piece of work.
  case library(String)
  /// Work a library stand-in does on the host over device memory (the tests' cuDNN), run again at
  /// each launch of a graph it was captured into.
  case hostWork(() throws -> Void)
  case copy(from: UInt64, to: UInt64, bytes: Int)
  case fill(UInt64, byte: UInt8, bytes: Int)
  case upload([UInt8], to: UInt64)

  /// A comparable record of a launch or library call: name, work items and argument bytes
  /// (addresses included); nil for the other requests.
  public var launchRecord: LaunchRecord? {
    switch self {
    case .launch(let kernel, let count, let arguments):
      let addresses = arguments.enumerated().compactMap { i, a in if case .pointer = a { i } else { nil } }
      return LaunchRecord(name: kernel.name, count: count, arguments: arguments.map(\.bytes), addressArguments: addresses)
    case .library(let name): return LaunchRecord(name: name, count: 0, arguments: [], addressArguments: [])
    default: return nil
    }
  }
}

/// A launch as the device saw it: two steps whose records are equal launch the same kernels over
/// the same grids, arguments and addresses, which is what replaying a captured graph assumes.
public struct LaunchRecord: Equatable, Sendable, CustomStringConvertible {
  public let name: String
  public let count: Int
  public let arguments: [[UInt8]]
  /// Which arguments are device addresses.
  public let addressArguments: [Int]
  public var description: String { "\(name)[\(count)](\(arguments.map { $0.map { String(format: "%02x", $0) }.joined() }.joined(separator: ", ")))" }
}

// MARK: - Graphs on a recording device

/// A capture on a `RecordingDevice`: the requests between `beginCapture` and `endCapture`, run
/// again, in order, on the wrapped device at each launch (only counted on the null device).
public final class RecordedGraph: CapturedGraph, @unchecked Sendable {
  /// The requests, in order.
  public let requests: [RecordedRequest]
  private weak var device: RecordingDevice?
  private let kept: [UInt64]

  init(requests: [RecordedRequest], device: RecordingDevice, kept: [UInt64]) {
    (self.requests, self.device, self.kept) = (requests, device, kept)
  }

  /// Launches, library calls and copies (host work is part of its library call).
  public var nodeCount: Int {
    requests.filter { if case .hostWork = $0 { return false } else { return true } }.count
  }

  /// Kernel launches per name, and library calls per entry point, in one launch of the graph.
  public var launchesByName: [String: Int] {
    var byName: [String: Int] = [:]
    for r in requests {
      switch r {
      case .launch(let kernel, _, _): byName[kernel.name, default: 0] += 1
      case .library(let name): byName[name, default: 0] += 1
      default: break
      }
    }
    return byName
  }

  deinit { for p in kept { device?.free(p) } }
}

extension RecordingDevice {
  /// Queues `request` into the capture under way (true), or says there is none (false).
  func capturing(_ request: RecordedRequest) -> Bool {
    lock.withLock {
      guard captured != nil else { return false }
      captured!.append(request)
      return true
    }
  }

  public func beginCapture() throws {
    try lock.withLock {
      guard captured == nil else { throw CUDAError(.unsupported, "a capture is already under way; captures do not nest") }
      captured = []
      keptDuringCapture = []
    }
  }

  public func endCapture() throws -> any CapturedGraph {
    let (requests, kept): ([RecordedRequest], [UInt64]) = try lock.withLock {
      guard let c = captured else { throw CUDAError(.unsupported, "no capture is under way") }
      defer { (captured, keptDuringCapture) = (nil, []) }
      return (c, keptDuringCapture)
    }
    return RecordedGraph(requests: requests, device: self, kept: kept)
  }

  public func abandonCapture() {
    let kept: [UInt64] = lock.withLock {
      defer { (captured, keptDuringCapture) = (nil, []) }
      return keptDuringCapture
    }
    for p in kept { free(p) }
  }

  /// Counts one host request and runs the graph's requests on the wrapped device.
  public func launchGraph(_ graph: any CapturedGraph) throws {
    guard let g = graph as? RecordedGraph else { throw CUDAError(.unsupported, "a graph captured on another device") }
    note {
      $0.graphLaunches += 1
      $0.graphNodes += g.nodeCount
    }
    guard let inner else { return }
    for r in g.requests {
      switch r {
      case .launch(let kernel, let count, let arguments): try inner.launch(kernel, count: count, arguments: arguments)
      case .library(let name): inner.libraryCall(name)
      case .hostWork(let work): try work()
      case .copy(let from, let to, let bytes): try inner.copy(from: from, to: to, bytes: bytes)
      case .fill(let p, let byte, let bytes): try inner.fill(p, byte: byte, bytes: bytes)
      case .upload(let bytes, let to): try bytes.withUnsafeBytes { try inner.upload($0, to: to) }
      }
    }
  }

  /// Runs `work` (a library stand-in computing on the host over device memory) now, or, inside a
  /// capture, records it so that each launch of the graph runs it again instead.
  public func hostWork(_ work: @escaping () throws -> Void) throws {
    if capturing(.hostWork(work)) { return }
    try work()
  }

  /// The launches and library calls since `reset()`, in order (kept when `logsRequests`).
  public var launchLog: [LaunchRecord] { lock.withLock { logged.compactMap(\.launchRecord) } }
}
