import CCUDA
import Foundation
import SegCore

// MARK: - Capture state

/// What a device keeps while it captures: the blocks freed during the capture (the graph goes on
/// using them at every launch, so they stay with the graph instead of going back to the
/// allocator) and whether a capture is under way. A host read inside a capture is refused: the
/// graph would have to wait for itself.
final class GraphCaptureState: @unchecked Sendable {
  private let lock = NSLock()
  private var active = false
  private var kept: [UInt64] = []
  private var pinned: [UnsafeMutableRawPointer] = []
  private var nodes = 0

  var isActive: Bool { lock.withLock { active } }

  /// Starts a capture; throws when one is already under way.
  func begin() throws {
    try lock.withLock {
      guard !active else { throw CUDAError(.unsupported, "a capture is already under way; captures do not nest") }
      active = true
      (kept, pinned, nodes) = ([], [], 0)
    }
  }

  /// Ends the capture; returns the device blocks and the pinned host buffers the graph keeps, and
  /// the pieces of work recorded.
  func end() -> (blocks: [UInt64], pinned: [UnsafeMutableRawPointer], nodes: Int) {
    lock.withLock {
      active = false
      defer { (kept, pinned, nodes) = ([], [], 0) }
      return (kept, pinned, nodes)
    }
  }

  /// Counts one piece of work queued during a capture.
  func note() { lock.withLock { if active { nodes += 1 } } }

  /// Keeps a pinned host buffer for the graph.
  func keepHost(_ pointer: UnsafeMutableRawPointer) { lock.withLock { pinned.append(pointer) } }

  /// Keeps `pointer` for the graph when a capture is under way (true), else leaves it to the caller.
  func keep(_ pointer: UInt64) -> Bool {
    lock.withLock {
      guard active else { return false }
      kept.append(pointer)
      return true
    }
  }

  /// Throws when a capture is under way: a host read cannot be part of a graph.
  func refuseHostRead() throws {
    if isActive {
      throw CUDAError(.unsupported, "a host read (a download) inside a captured step: the graph cannot wait for itself; read the value after the step")
    }
  }
}

// MARK: - Devices that cannot capture

extension KernelDevice {
  public func beginCapture() throws {
    throw CUDAError(.unsupported, "\(description) cannot capture graphs")
  }
  public func endCapture() throws -> any CapturedGraph {
    throw CUDAError(.unsupported, "\(description) cannot capture graphs")
  }
  public func abandonCapture() {}
  public func launchGraph(_ graph: any CapturedGraph) throws {
    throw CUDAError(.unsupported, "\(description) cannot launch graphs")
  }
}

// MARK: - CUDA graphs

/// A CUDA graph captured from the context's stream and instantiated, with the device blocks and
/// the pinned host buffers its work reads or writes (freed with it).
final class CUDAGraph: CapturedGraph, @unchecked Sendable {
  let context: CUDAContext
  let graph: ccuda_CUgraph
  let exec: ccuda_CUgraphExec
  let nodeCount: Int
  private let blocks: [UInt64]
  private let pinned: [UnsafeMutableRawPointer]

  init(context: CUDAContext, graph: ccuda_CUgraph, exec: ccuda_CUgraphExec, nodes: Int, blocks: [UInt64], pinned: [UnsafeMutableRawPointer]) {
    (self.context, self.graph, self.exec, self.nodeCount, self.blocks, self.pinned) = (context, graph, exec, nodes, blocks, pinned)
  }

  deinit {
    // A launch may still be queued: let it finish before its memory goes.
    try? context.synchronize()
    let api = context.driver.api
    _ = api.cuGraphExecDestroy(exec)
    _ = api.cuGraphDestroy(graph)
    for b in blocks { context.free(b) }
    for p in pinned { context.staging.host.freeHost(p) }
  }
}

extension GPUKernelDevice {
  /// The work queued from now on is recorded on the stream (relaxed mode: the caching allocator
  /// may still call cuMemAlloc) instead of running.
  public func beginCapture() throws {
    try capture.begin()
    do {
      try context.current {
        try context.driver.api.check(
          context.driver.api.cuStreamBeginCapture(context.stream, ccuda_CUstreamCaptureMode(CCUDA_STREAM_CAPTURE_MODE_RELAXED)),
          "cuStreamBeginCapture")
      }
    } catch {
      _ = capture.end()
      throw error
    }
  }

  /// Ends the capture and instantiates the graph.
  public func endCapture() throws -> any CapturedGraph {
    let api = context.driver.api
    let (blocks, pinned, nodes) = capture.end()
    var graph: ccuda_CUgraph? = nil
    do {
      try context.current { try api.check(api.cuStreamEndCapture(context.stream, &graph), "cuStreamEndCapture") }
      guard let graph else { throw CUDAError(.callFailed, "cuStreamEndCapture returned no graph") }
      var exec: ccuda_CUgraphExec? = nil
      do {
        try context.current { try api.check(api.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags") }
      } catch {
        _ = api.cuGraphDestroy(graph)
        throw error
      }
      guard let exec else { throw CUDAError(.callFailed, "cuGraphInstantiateWithFlags returned no graph") }
      return CUDAGraph(context: context, graph: graph, exec: exec, nodes: nodes, blocks: blocks, pinned: pinned)
    } catch {
      for b in blocks { context.free(b) }
      for p in pinned { context.staging.host.freeHost(p) }
      throw error
    }
  }

  /// Ends a failed capture: the stream leaves capture mode and what it recorded is dropped.
  public func abandonCapture() {
    guard capture.isActive else { return }
    let api = context.driver.api
    let (blocks, pinned, _) = capture.end()
    var graph: ccuda_CUgraph? = nil
    _ = try? context.current { _ = api.cuStreamEndCapture(context.stream, &graph) }
    if let graph { _ = api.cuGraphDestroy(graph) }
    // The stream may have run nothing of it, but work queued before the capture may still use them.
    try? context.synchronize()
    for b in blocks { context.free(b) }
    for p in pinned { context.staging.host.freeHost(p) }
  }

  /// One cuGraphLaunch on the context's stream.
  public func launchGraph(_ graph: any CapturedGraph) throws {
    guard let g = graph as? CUDAGraph, g.context === context else {
      throw CUDAError(.unsupported, "a graph captured on another device")
    }
    let api = context.driver.api
    try context.current { try api.check(api.cuGraphLaunch(g.exec, context.stream), "cuGraphLaunch") }
  }

  /// An upload inside a capture: the bytes go to a page-locked buffer the graph keeps, so that
  /// every launch copies the same bytes (a kernel's table of fixed addresses).
  func capturedUpload(_ bytes: UnsafeRawBufferPointer, to pointer: UInt64) throws {
    guard bytes.count > 0, let base = bytes.baseAddress else { return }
    let host = try context.staging.host.allocateHost(bytes.count)
    host.copyMemory(from: base, byteCount: bytes.count)
    capture.keepHost(host)
    capture.note()
    let api = context.driver.api
    try context.current {
      try api.check(api.cuMemcpyHtoDAsync(pointer, host, bytes.count, context.stream), "cuMemcpyHtoDAsync (captured)")
    }
  }
}
