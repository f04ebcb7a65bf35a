import CCUDA
import Foundation
import SegCore

// MARK: - Convolutions through the graph API

/// conv2d, conv2dBackwardData and conv2dBackwardFilter through cuDNN's graph API, the kernel
/// table's first candidate ("cudnn-graph") for them. Each shape's graph gets every plan the
/// heuristics offer (mode A, then the fallback list, filtered as `PlanFilter` says); on first use
/// every plan is timed once and the fastest kept, in memory and on disk (`PlanStore`), so that a
/// second run loads it. A shape with no plan is declined, once said on stderr, and the legacy
/// "cudnn" candidate runs it. Padding may be asymmetric (no pad or crop kernel); filters are
/// read and written OHWI as for the legacy path, bias and ReLU run as our kernel after it.
final class CUDNNGraphConvolutions: @unchecked Sendable {
  let api: CUDNNGraphAPI
  /// The legacy path: its handle, lock, filter reorders and bias epilogue are shared.
  let legacy: CUDNNConvolutions
  let filter: PlanFilter
  let store: PlanStore
  /// cuDNN's description of the GPU, which the heuristics get (nil: they ask the handle's GPU).
  let device: BackendDescriptor?
  /// Where one-line notes go (a declined shape, a timing); stderr by default.
  let log: @Sendable (String) -> Void
  /// The chosen plan of each key, or nil for a key with none (declined).
  private var chosen: [ConvGraphKey: ExecutionPlan?] = [:]

  /// The largest workspace a plan may ask for (PyTorch caps it at the allocator's largest free block).
  static let defaultMaxWorkspaceBytes = 1 << 30

  init(
    api: CUDNNGraphAPI, legacy: CUDNNConvolutions, store: PlanStore, device: BackendDescriptor?,
    maxWorkspaceBytes: Int = defaultMaxWorkspaceBytes,
    log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
  ) {
    self.api = api
    self.legacy = legacy
    self.store = store
    self.device = device
    self.log = log
    filter = PlanFilter(
      tensorFloat32: legacy.tensorFloat32, deterministic: legacy.deterministic, maxWorkspaceBytes: maxWorkspaceBytes)
  }

  // MARK: Ops

  /// conv2d (x, filter[, bias]); nil for a dtype cuDNN does not convolve or a shape with no plan.
  func conv2d(_ b: CUDABackend, _ p: Conv2D, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = legacy.dataType(b, x, out).map({ _ in out.dtype }) else { return nil }
    let fs = x[1].type.shape
    let key = ConvGraphKey(
      .forward, input: x[0].type.shape, kernel: (fs[0], fs[1]), outputChannels: fs[3], output: (out.shape[1], out.shape[2]),
      geometry: p.geometry, dtype: dtype, tensorFloat32: legacy.tensorFloat32)
    return try legacy.lock.withLock { () -> CUDAStorage? in
      let filter = try legacy.reorderToOHWI(b, x[1])
      let y = try b.output(out)
      guard try run(b, key, [x[0].pointer, filter.pointer, y.pointer]) else { return nil }
      try legacy.epilogue(b, p, x, y, out)
      return y
    }
  }

  /// conv2dBackwardData (dy, filter): dx [N,H,W,C], the transposed convolution too; nil as conv2d.
  func conv2dBackwardData(_ b: CUDABackend, _ p: Conv2DBackwardData, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard legacy.dataType(b, x, out) != nil else { return nil }
    let (dy, fs) = (x[0].type.shape, x[1].type.shape)
    let key = ConvGraphKey(
      .backwardData, input: out.shape, kernel: (fs[0], fs[1]), outputChannels: fs[3], output: (dy[1], dy[2]),
      geometry: p.geometry, dtype: out.dtype, tensorFloat32: legacy.tensorFloat32)
    return try legacy.lock.withLock { () -> CUDAStorage? in
      let filter = try legacy.reorderToOHWI(b, x[1])
      let dx = try b.output(out)
      guard try run(b, key, [dx.pointer, filter.pointer, x[0].pointer]) else { return nil }
      return dx
    }
  }

  /// conv2dBackwardFilter (x, dy): dw [KH,KW,C,O] in the operands' dtype; nil as conv2d.
  func conv2dBackwardFilter(_ b: CUDABackend, _ p: Conv2DBackwardFilter, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard legacy.dataType(b, x, out) != nil else { return nil }
    let dy = x[1].type.shape
    let (kh, kw, c, o) = (out.shape[0], out.shape[1], out.shape[2], out.shape[3])
    let key = ConvGraphKey(
      .backwardFilter, input: x[0].type.shape, kernel: (kh, kw), outputChannels: o, output: (dy[1], dy[2]),
      geometry: p.geometry, dtype: out.dtype, tensorFloat32: legacy.tensorFloat32)
    return try legacy.lock.withLock { () -> CUDAStorage? in
      let dw = try b.output(out)
      guard try run(b, key, [x[0].pointer, dw.pointer, x[1].pointer]) else { return nil }
      dw.layout = .filterOHWI
      return dw
    }
  }

  // MARK: Plans

  /// Runs `key`'s plan on the buffers of tensors 1, 2 and 3 (`ConvTensorID`); false when the key
  /// has no plan. Called with the lock held.
  private func run(_ b: CUDABackend, _ key: ConvGraphKey, _ pointers: [UInt64]) throws -> Bool {
    guard let plan = try plan(b, key, pointers) else { return false }
    try execute(b, plan, pointers)
    return true
  }

  /// The plan of `key`: chosen before, stored on disk, or found and timed now on `pointers`.
  private func plan(_ b: CUDABackend, _ key: ConvGraphKey, _ pointers: [UInt64]) throws -> ExecutionPlan? {
    if let known = chosen[key] { return known }
    let finder = PlanFinder(api: api, filter: filter)
    let target = PlanTarget.handle(legacy.handle)
    return try legacy.context.current { () -> ExecutionPlan? in
      // A stored plan this cuDNN or GPU no longer takes is found and timed again.
      if let json = store.plan(key), let plan = try? finder.load(json: json, target) {
        chosen[key] = plan
        return plan
      }
      let found: PlanFinder.Result
      do {
        let graph = try ConvGraphBuilder(api: api).graph(key, handle: legacy.handle)
        // The heuristics are asked about cuDNN's description of the GPU, and again about the
        // handle's GPU alone if that gives nothing.
        let described = device.flatMap { try? finder.plans(key, graph: graph, target: target, device: $0) }
        found = try described.flatMap { $0.plans.isEmpty ? nil : $0 } ?? finder.plans(key, graph: graph, target: target, device: nil)
      } catch {
        // A graph or a heuristics query cuDNN refuses is a shape this path does not take.
        chosen[key] = .some(nil)
        log("cudnn-graph: no execution plan for \(key) (\(error)); the legacy cudnn candidate runs it")
        return nil
      }
      guard !found.plans.isEmpty else {
        chosen[key] = .some(nil)
        log(
          "cudnn-graph: no execution plan for \(key) (\(found.configurations) configurations, \(found.rejected) filtered, "
            + "\(found.failed) not finalized); the legacy cudnn candidate runs it")
        return nil
      }
      let (best, ms) = try fastest(b, found.plans, pointers)
      chosen[key] = best
      log("cudnn-graph: \(key): \(found.plans.count) plans timed, the fastest \(String(format: "%.3f", ms)) ms")
      if let problem = store.store(key, plan: best.json, milliseconds: ms) { log(problem) }
      return best
    }
  }

  /// Times each plan once on the op's own buffers (after one untimed run of the first, which
  /// loads what it needs) and returns the fastest; a plan that fails to run is skipped.
  private func fastest(_ b: CUDABackend, _ plans: [ExecutionPlan], _ pointers: [UInt64]) throws -> (ExecutionPlan, Double) {
    try execute(b, plans[0], pointers)
    try legacy.context.synchronize()
    var best: (ExecutionPlan, Double)? = nil
    for plan in plans {
      let start = DispatchTime.now().uptimeNanoseconds
      do {
        try execute(b, plan, pointers)
        try legacy.context.synchronize()
      } catch { continue }
      let ms = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-6
      if best == nil || ms < best!.1 { best = (plan, ms) }
    }
    guard let best else { throw CUDAError(.callFailed, "cudnn-graph: none of \(plans.count) plans ran") }
    return best
  }

  /// Runs `plan` on the buffers of tensors 1, 2, 3 with a fresh workspace.
  private func execute(_ b: CUDABackend, _ plan: ExecutionPlan, _ pointers: [UInt64]) throws {
    let workspace = try b.output(TensorType([max(plan.workspaceBytes, 1)], .u8))
    let pack = try BackendDescriptor(.variantPack, api: api)
    try pack.set(.variantPointers, pointers: pointers.map(legacy.address))
    try pack.set(.variantIDs, int64: [ConvTensorID.input, ConvTensorID.filter, ConvTensorID.output])
    try pack.set(.variantWorkspace, pointers: [legacy.address(workspace.pointer)])
    try pack.finalize()
    b.device.libraryCall("cudnnBackendExecute")
    try legacy.context.current {
      try api.base.check(api.cudnnBackendExecute(legacy.handle, plan.descriptor.pointer, pack.pointer), "cudnnBackendExecute")
    }
  }
}
