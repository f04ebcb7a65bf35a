import CCUDA

// MARK: - Where plans run

/// What a plan is finalized for: the GPU behind a cuDNN handle, or a device described in JSON
/// (`CuDNNDeviceDescription`), which needs no GPU.
enum PlanTarget {
  case handle(ccuda_cudnnHandle)
  case device(BackendDescriptor)
}

/// Which engine configurations are acceptable for a graph, as PyTorch filters them.
struct PlanFilter: Sendable {
  /// Whether f32 graphs may take Tensor Core (TF32) engines.
  var tensorFloat32: Bool
  /// Whether to drop engines cuDNN marks non-deterministic.
  var deterministic: Bool
  /// Plans that need more workspace than this are dropped.
  var maxWorkspaceBytes: Int

  /// Whether an engine with `notes` (cuDNN's numerical notes) is acceptable for `key`.
  func accepts(notes: [Int32], _ key: ConvGraphKey) -> Bool {
    // Converting inputs to a narrower type changes the results: never (PyTorch drops these too).
    if notes.contains(CCUDA_CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS) { return false }
    if key.dtype == "f32", !key.tensorFloat32 || !tensorFloat32, notes.contains(CCUDA_CUDNN_NUMERICAL_NOTE_TENSOR_CORE) {
      return false
    }
    if deterministic, notes.contains(CCUDA_CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) { return false }
    return true
  }
}

/// A finalized execution plan and what it needs.
struct ExecutionPlan: @unchecked Sendable {
  let descriptor: BackendDescriptor
  let workspaceBytes: Int
  /// The plan as cuDNN serializes it, to store and load it again.
  let json: String
}

// MARK: - Finding plans

/// Asks cuDNN's heuristics (mode A, then the fallback list) for engine configurations of a graph
/// and finalizes each acceptable one as a plan for a target.
struct PlanFinder {
  let api: CUDNNGraphAPI
  let filter: PlanFilter

  /// What the search found: the plans, and how many configurations the heuristics offered.
  struct Result {
    var plans: [ExecutionPlan] = []
    var configurations = 0
    var rejected = 0
    var failed = 0
  }

  /// Every acceptable plan of `key`'s graph for `target`, each configuration once, mode A's first.
  func plans(_ key: ConvGraphKey, graph: BackendDescriptor, target: PlanTarget, device: BackendDescriptor?) throws -> Result {
    var result = Result()
    var seen: Set<String> = []
    var failure: Error? = nil
    for mode in [CCUDA_CUDNN_HEUR_MODE_A, CCUDA_CUDNN_HEUR_MODE_FALLBACK] {
      // One mode refusing the graph leaves the other's configurations.
      let configs: [BackendDescriptor]
      do { configs = try configurations(graph, mode: mode, device: device) } catch {
        failure = failure ?? error
        continue
      }
      for config in configs {
        result.configurations += 1
        let engine = try config.descriptors(.engineConfigEngine, of: .engine).first
        let notes = try engine?.enumValues(.engineNotes, type: BackendValueType.numericalNote) ?? []
        guard filter.accepts(notes: notes, key) else {
          result.rejected += 1
          continue
        }
        guard let plan = try finalize(config, target) else {
          result.failed += 1
          continue
        }
        guard plan.workspaceBytes <= filter.maxWorkspaceBytes else {
          result.rejected += 1
          continue
        }
        if seen.insert(plan.json).inserted { result.plans.append(plan) }
      }
    }
    if result.plans.isEmpty, let failure { throw failure }
    return result
  }

  /// The engine configurations the heuristics offer in `mode`.
  private func configurations(_ graph: BackendDescriptor, mode: Int32, device: BackendDescriptor?) throws -> [BackendDescriptor] {
    let heuristics = try BackendDescriptor(.engineHeuristics, api: api)
    try heuristics.set(.heuristicsGraph, descriptors: [graph])
    try heuristics.set(.heuristicsMode, enumValue: mode, type: BackendValueType.heuristicsMode)
    if let device { try heuristics.set(.heuristicsDevice, descriptors: [device]) }
    try heuristics.finalize()
    return try heuristics.descriptors(.heuristicsResults, of: .engineConfig)
  }

  /// The plan of `config` for `target`, or nil when cuDNN does not finalize it (an engine that
  /// does not support this graph on this device).
  func finalize(_ config: BackendDescriptor, _ target: PlanTarget) throws -> ExecutionPlan? {
    let plan = try BackendDescriptor(.executionPlan, api: api)
    try plan.set(.planEngineConfig, descriptors: [config])
    try setTarget(plan, target)
    guard plan.finalizeStatus() == CCUDA_CUDNN_STATUS_SUCCESS else { return nil }
    return ExecutionPlan(descriptor: plan, workspaceBytes: try plan.int64(.planWorkspaceSize), json: try plan.text(.planJSON))
  }

  /// A plan loaded from its JSON (as `ExecutionPlan.json` stored it), finalized for `target`; nil
  /// when this cuDNN or device no longer takes it.
  func load(json: String, _ target: PlanTarget) throws -> ExecutionPlan? {
    let plan = try BackendDescriptor(.executionPlan, api: api)
    try setTarget(plan, target)
    try plan.set(.planJSON, text: json)
    guard plan.finalizeStatus() == CCUDA_CUDNN_STATUS_SUCCESS else { return nil }
    return ExecutionPlan(descriptor: plan, workspaceBytes: try plan.int64(.planWorkspaceSize), json: json)
  }

  private func setTarget(_ plan: BackendDescriptor, _ target: PlanTarget) throws {
    switch target {
    case .handle(let h): try plan.set(.planHandle, handle: h)
    case .device(let d): try plan.set(.planDevice, descriptors: [d])
    }
  }
}
