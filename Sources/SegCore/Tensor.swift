import Foundation

// MARK: - Graph node

/// One node of the graph: an op applied to input nodes (none for a leaf), with its value.
/// Eager mode evaluates a node when it is made; the inputs are kept so that gradients can be taken.
///
/// A node's value lives as long as something needs it: a `Tensor` held outside the graph, a
/// consumer whose VJP reads it (`Primitive.vjpReads(input:)`), or the node's own VJP when that
/// reads its output. A value that only the graph's edges reach, and that no VJP reads, is freed at
/// once, as PyTorch frees what no backward function saved: an add's inputs, say, or a crop's.
public final class Node: @unchecked Sendable {
  /// Creation order: every input has a smaller id than its consumers (a topological order).
  public let id: Int
  /// The op that made this node; nil for a leaf (a constant, a parameter, an input).
  public let op: (any Primitive)?
  /// The inputs, or empty when made while gradients were not being recorded or once a gradient
  /// walk has consumed the node.
  public private(set) var inputs: [Node]
  /// True once `gradients(of:wrt:)` has walked past this node without `keepGraph` and let go of its
  /// inputs, so that their values could be freed; gradients cannot flow through it again.
  public private(set) var isConsumed = false
  public let type: TensorType
  public let backend: any Backend
  private var value: (any DeviceStorage)?
  /// Tensors that hold this node, and unconsumed consumers whose VJP reads its value.
  private var holders = 0, readers = 0

  init(op: (any Primitive)?, inputs: [Node], type: TensorType, backend: any Backend, storage: any DeviceStorage) {
    self.id = NodeCounter.next()
    self.op = op
    self.inputs = inputs
    self.type = type
    self.backend = backend
    self.value = storage
    Node.lock.withLock {
      for (i, input) in inputs.enumerated() where op?.vjpReads(input: i) ?? false { input.readers += 1 }
    }
  }

  deinit {
    // A consumer dropped before any walk reached it stops needing its inputs' values.
    Node.lock.withLock { letGoOfInputs() }
  }

  /// The value, in the backend's own buffer.
  public var storage: any DeviceStorage {
    guard let v = Node.lock.withLock({ value }) else {
      preconditionFailure("the value of a \(op?.description ?? "leaf") node \(type) was freed: a VJP read a value that its op says it does not read")
    }
    return v
  }

  /// Whether the value is still held (diagnostics and tests).
  public var holdsValue: Bool { Node.lock.withLock { value != nil } }

  /// Lets go of the inputs (the gradient walk is past this node).
  func consume() {
    // The inputs are released after the lock: a node freed by that deinitialises, and takes it.
    let dropped: [Node] = Node.lock.withLock {
      guard !inputs.isEmpty else { return [] }
      letGoOfInputs()
      let dropped = inputs
      inputs = []
      isConsumed = true
      freeIfUnneeded()
      return dropped
    }
    withExtendedLifetime(dropped) {}
  }

  // MARK: Value lifetime (under `lock`)

  fileprivate static let lock = Lock()

  fileprivate func hold() { Node.lock.withLock { holders += 1 } }

  fileprivate func release() {
    Node.lock.withLock {
      holders -= 1
      freeIfUnneeded()
    }
  }

  private func letGoOfInputs() {
    for (i, input) in inputs.enumerated() where op?.vjpReads(input: i) ?? false {
      input.readers -= 1
      input.freeIfUnneeded()
    }
  }

  /// Frees the value when no tensor holds the node, no pending VJP reads it, and its own VJP (still
  /// to run) does not read its output.
  private func freeIfUnneeded() {
    let ownVJPReadsIt = !inputs.isEmpty && (op?.vjpReadsOutput ?? false)
    if holders == 0, readers == 0, !ownVJPReadsIt { value = nil }
  }
}

private enum NodeCounter {
  nonisolated(unsafe) private static var value = 0
  private static let lock = Lock()
  static func next() -> Int {
    lock.withLock {
      value += 1
      return value
    }
  }
}

// MARK: - Tensor

/// A tensor: a handle on a graph node, which keeps the node's value alive. Images are NHWC,
/// filters HWIO (kh, kw, in, out).
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
  private let holder: Holder
  public var node: Node { holder.node }

  public init(node: Node) { holder = Holder(node) }

  /// A leaf holding `host`'s values on `backend` (every leaf initialiser defaults to the reference
  /// backend: there is no mutable default, so library code names its backend).
  public init(_ host: HostTensor, on backend: any Backend = ReferenceBackend.shared) throws {
    let storage = try backend.upload(host)
    self.init(node: Node(op: nil, inputs: [], type: host.type, backend: backend, storage: storage))
  }

  /// An f32 leaf from values in row-major order.
  public init(shape: Shape, floats: [Float], on backend: any Backend = ReferenceBackend.shared) throws {
    try self.init(HostTensor(shape: shape, floats: floats), on: backend)
  }

  /// A leaf of `shape` and `dtype` with every element `value`.
  public init(
    repeating value: Double, shape: Shape, dtype: DType = .f32, on backend: any Backend = ReferenceBackend.shared
  ) throws {
    try self.init(HostTensor(type: TensorType(shape, dtype), repeating: value), on: backend)
  }

  /// An f32 scalar (shape []).
  public init(scalar value: Float, on backend: any Backend = ReferenceBackend.shared) throws {
    try self.init(shape: [], floats: [value], on: backend)
  }

  public var type: TensorType { node.type }
  public var shape: Shape { node.type.shape }
  public var dtype: DType { node.type.dtype }
  public var backend: any Backend { node.backend }

  /// The values, copied to host memory (row-major).
  public func host() throws -> HostTensor {
    try TracedStorage.checkReadable(node.storage, type: type)
    return try backend.download(node.storage, type: type)
  }
  /// The values as Float, row-major.
  public func floats() throws -> [Float] { try host().floats }
  /// The single value of a one-element tensor.
  public func item() throws -> Double {
    guard shape.count == 1 else {
      throw TensorError(op: "item", operands: [type], "needs a tensor of exactly one element")
    }
    return try host().doubles[0]
  }

  /// The same values on another backend (a new leaf; gradients do not flow across).
  public func to(_ other: any Backend) throws -> Tensor {
    if other === backend { return self }
    return try Tensor(host(), on: other)
  }

  /// A leaf with the same value: gradients stop here.
  public func detached() -> Tensor {
    let copy = Tensor(node: Node(op: nil, inputs: [], type: type, backend: backend, storage: node.storage))
    ProgramRecorder.active?.alias(copy.node, of: node)
    return copy
  }

  public var description: String {
    (try? host().description) ?? "\(type) on \(backend.name)"
  }
}

/// What a Tensor and its copies share: one hold on the node's value, let go with the last copy.
private final class Holder {
  let node: Node
  init(_ node: Node) {
    self.node = node
    node.hold()
  }
  deinit { node.release() }
}

// MARK: - Applying ops

extension Tensor {
  /// Runs `op` on `inputs` eagerly on their backend (or `backend` for an op with no inputs) and
  /// returns the output's node. Errors name the op and the operands.
  public static func apply(_ op: any Primitive, _ inputs: [Tensor], on backend: (any Backend)? = nil) throws -> Tensor {
    let outputs = try applyOutputs(op, inputs, on: backend)
    guard outputs.count == 1 else {
      throw TensorError(op: op.kind.rawValue, operands: inputs.map(\.type), "has \(outputs.count) outputs; use Tensor.applyOutputs")
    }
    return outputs[0]
  }

  /// Runs `op` as `apply` does and returns every output (a fused update has several), each its own
  /// node with the same op and inputs.
  public static func applyOutputs(_ op: any Primitive, _ inputs: [Tensor], on backend: (any Backend)? = nil) throws -> [Tensor] {
    let types = inputs.map(\.type)
    guard let backend = backend ?? inputs.first?.backend else {
      throw TensorError(op: op.kind.rawValue, "an op without inputs needs a backend")
    }
    if let other = inputs.first(where: { $0.backend !== backend }) {
      throw TensorError(
        op: op.kind.rawValue, operands: types,
        "operands live on different backends (\(backend.name), \(other.backend.name)); move them with .to(_:)")
    }
    let outTypes = try op.outputTypes(types)
    let operands = inputs.map { Operand(storage: $0.node.storage, type: $0.type) }
    let storages: [any DeviceStorage]
    if let recorder = ProgramRecorder.active {
      // Tracing for `compile` runs nothing: the outputs are abstract (Compile/Tracing.swift).
      storages = recorder.outputs(outTypes)
    } else if let profiler = OpProfiler.active {
      storages = try profiler.measure(op.kind, output: outTypes[0], on: backend) { try backend.kernels.run(op, operands, outputs: outTypes) }
    } else {
      storages = try backend.kernels.run(op, operands, outputs: outTypes)
    }
    let recorded = GradientRecording.isOn ? inputs.map(\.node) : []
    let outputs = zip(outTypes, storages).map { type, storage in
      Tensor(node: Node(op: op, inputs: recorded, type: type, backend: backend, storage: storage))
    }
    // Tracing for `compile` writes the op down as it runs (Compile/Tracing.swift).
    if let recorder = ProgramRecorder.active { recorder.record(op, inputs: inputs.map(\.node), outputs: outputs.map(\.node)) }
    return outputs
  }
}

// MARK: - Recording

/// Whether new nodes keep their inputs (so that gradients can flow through them).
public enum GradientRecording {
  @TaskLocal static var enabled = true

  /// True unless inside `withoutGradients`.
  public static var isOn: Bool { enabled }
}

/// Runs `body` without recording inputs: nothing made inside can be differentiated, and
/// intermediate values are freed as soon as they are no longer used (inference, optimizer updates).
public func withoutGradients<T>(_ body: () throws -> T) rethrows -> T {
  try GradientRecording.$enabled.withValue(false) { try body() }
}
