import Foundation

// MARK: - Counting what a step asks of the device

/// A `KernelDevice` that counts what the backend asks of it (kernel launches by name, library
/// calls such as cuDNN's convolutions, copies, fills, uploads and downloads) and passes each
/// request on to the device it wraps. Without a device it records only: allocations are
/// addresses that are never dereferenced, downloads read zeros, and nothing runs, so that the
/// host's own cost of a full-size step can be measured with no device work at all.
///
/// A download is a host read: it waits for the queued work, so its count is the number of host
/// synchronisations a step makes.
public final class RecordingDevice: KernelDevice, @unchecked Sendable {
  /// What the backend asked of the device since the last `reset()`.
  public struct Counts: Sendable, Equatable {
    public var launches = 0
    /// Calls into a vendor library (cuDNN) that queue device work.
    public var libraryCalls = 0
    public var copies = 0
    public var fills = 0
    public var uploads = 0
    /// Host reads, each a synchronisation with the queued work.
    public var downloads = 0
    public var allocations = 0
    /// Captured graphs launched (each one host request), and the work they ran.
    public var graphLaunches = 0
    public var graphNodes = 0
    /// Launches per kernel name, and library calls per entry point.
    public var byName: [String: Int] = [:]
    public init() {}
  }

  /// The device the requests go on to; nil records without running anything.
  public let inner: (any KernelDevice)?
  let lock = NSLock()
  private var recorded = Counts()
  private var nextAddress: UInt64 = 1 << 40
  /// The null device's freed addresses by block size, reused last-freed first as the caching
  /// allocator reuses blocks, so that a step repeated on the same buffers gets the same addresses.
  private var freeBlocks: [Int: [UInt64]] = [:]
  private var blockSizes: [UInt64: Int] = [:]
  /// The requests of the capture under way (`RecordedGraph.swift`), and the blocks freed during it.
  var captured: [RecordedRequest]?
  var keptDuringCapture: [UInt64] = []
  /// Every launch and library call since `reset()`, in order, when `logsRequests`.
  var logged: [RecordedRequest] = []
  /// Whether launches, library calls and copies are also kept in order (`launchLog`).
  public var logsRequests = false

  /// Whether launches and library calls are also counted by name (a dictionary update per
  /// launch, which a benchmark of the host's own cost leaves out).
  public let recordsNames: Bool

  /// A recorder in front of `inner`, or a null device (nothing runs) when `inner` is nil.
  public init(wrapping inner: (any KernelDevice)?, recordsNames: Bool = true) {
    self.inner = inner
    self.recordsNames = recordsNames
  }

  public var description: String { inner.map { "recording \($0.description)" } ?? "null device (records, runs nothing)" }

  /// The counts since the last reset.
  public var counts: Counts { lock.withLock { recorded } }

  /// Starts the counts over (e.g. at the start of a step).
  public func reset() {
    lock.withLock {
      recorded = Counts()
      logged = []
    }
  }

  func note(_ update: (inout Counts) -> Void) { lock.withLock { update(&recorded) } }

  // MARK: KernelDevice

  public func allocate(_ bytes: Int) throws -> UInt64 {
    note { $0.allocations += 1 }
    if let inner { return try inner.allocate(bytes) }
    return lock.withLock {
      let size = (max(bytes, 1) + 255) / 256 * 256
      if let address = freeBlocks[size]?.popLast() { return address }
      let address = nextAddress
      nextAddress += UInt64(size)
      blockSizes[address] = size
      return address
    }
  }

  public func free(_ pointer: UInt64) {
    let kept: Bool = lock.withLock {
      guard captured != nil else { return false }
      keptDuringCapture.append(pointer)
      return true
    }
    guard !kept else { return }
    if let inner { return inner.free(pointer) }
    lock.withLock { if let size = blockSizes[pointer] { freeBlocks[size, default: []].append(pointer) } }
  }

  public func upload(_ bytes: UnsafeRawBufferPointer, to pointer: UInt64) throws {
    if capturing(.upload(Array(bytes), to: pointer)) { return }
    note { $0.uploads += 1 }
    try inner?.upload(bytes, to: pointer)
  }

  public func download(_ pointer: UInt64, into bytes: UnsafeMutableRawBufferPointer) throws {
    if lock.withLock({ captured != nil }) {
      throw CUDAError(.unsupported, "a host read (a download) inside a captured step: the graph cannot wait for itself; read the value after the step")
    }
    note { $0.downloads += 1 }
    if let inner { return try inner.download(pointer, into: bytes) }
    if let base = bytes.baseAddress { memset(base, 0, bytes.count) }
  }

  public func copy(from source: UInt64, to destination: UInt64, bytes: Int) throws {
    if capturing(.copy(from: source, to: destination, bytes: bytes)) { return }
    note { $0.copies += 1 }
    try inner?.copy(from: source, to: destination, bytes: bytes)
  }

  public func fill(_ pointer: UInt64, byte value: UInt8, bytes: Int) throws {
    if capturing(.fill(pointer, byte: value, bytes: bytes)) { return }
    note { $0.fills += 1 }
    try inner?.fill(pointer, byte: value, bytes: bytes)
  }

  public func launch(_ kernel: KernelHandle, count: Int, arguments: [KernelArgument]) throws {
    guard count > 0 else { return }
    let request = RecordedRequest.launch(kernel, count: count, arguments: arguments)
    if capturing(request) { return }
    if logsRequests { lock.withLock { logged.append(request) } }
    note {
      $0.launches += 1
      if recordsNames { $0.byName[kernel.name, default: 0] += 1 }
    }
    if let inner { return try inner.launch(kernel, count: count, arguments: arguments) }
    // What a GPU launch costs the host besides the driver: its parameter block (the handle is
    // already resolved, as the GPU device's table of functions is indexed by it).
    KernelArgument.withParameters(arguments) { _ in }
  }

  public func libraryCall(_ name: String) {
    if capturing(.library(name)) { return }
    if logsRequests { lock.withLock { logged.append(.library(name)) } }
    note {
      $0.libraryCalls += 1
      if recordsNames { $0.byName[name, default: 0] += 1 }
    }
    inner?.libraryCall(name)
  }

  /// Whether requests run anywhere (false for the null device: kernels and library calls are only counted).
  public var runsWork: Bool { inner != nil }
}
