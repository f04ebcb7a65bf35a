import CDNNL
import Foundation
import SegCore

// MARK: - CPU backend

/// The CPU backend: oneDNN (Debian's libdnnl) for convolutions, max pooling and ReLU, keeping
/// their tensors in oneDNN's blocked layouts between ops (crops, pads, concats and adds of
/// blocked tensors too), and Swift kernels over row-major buffers (`SwiftKernels.table`) for
/// every other op. Tensors go in and out row-major (NHWC).
public final class CPUBackend: Backend, @unchecked Sendable {
  /// The one CPU backend.
  public static let shared = CPUBackend()

  /// "cpu".
  public let name = "cpu"

  /// The kernel table: per primitive type the blocked-layout kernel, oneDNN's, then the Swift one.
  public private(set) var kernels = KernelTable(backendName: "cpu")

  private init() {
    for type in Primitives.all { Self.register(type, self, in: &kernels) }
    kernels.registerOutputs(AdamUpdate.self, "swift") { [unowned self] op, inputs, _ in
      try self.adamUpdate(parameter: inputs[0], m: inputs[1], v: inputs[2], gradient: inputs[3], op.constants).map { [$0.parameter, $0.m, $0.v] }
    }
  }

  private static func register<P: Primitive>(_ type: P.Type, _ backend: CPUBackend, in table: inout KernelTable) {
    for kind in type.kinds {
      guard let k = backend.kernel(for: kind) else { continue }
      table.register(type, "cpu") { op, inputs, output in
        guard op.kind == kind else { return nil }
        return try k(op, inputs, output)
      }
    }
  }

  /// Bytes of freed large buffers the backend keeps for reuse (default 1 GiB): a training step
  /// asks for the same sizes every step, and reusing them avoids faulting in fresh pages.
  public var recycledBufferLimit: Int {
    get { HostMemory.shared.keepLimitBytes }
    set { HostMemory.shared.keepLimitBytes = newValue }
  }

  /// The most bytes its buffers held at once since `resetPeakMemory()`: tensors, oneDNN
  /// scratchpads, and freed buffers kept for reuse.
  public var peakMemoryBytes: Int? { HostMemory.shared.peakBytes }

  /// Starts a new peak from what the buffers hold now.
  public func resetPeakMemory() { HostMemory.shared.resetPeak() }

  // MARK: Transfers

  /// Copies row-major host values (any dtype) into a new row-major CPU buffer.
  public func upload(_ host: HostTensor) throws -> any DeviceStorage {
    let buffer = HostBuffer(byteCount: host.shape.count * host.dtype.byteSize)
    func copy<T>(_ a: [T]) {
      a.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
    switch host.data {
    case .f64(let a): copy(a)
    case .f32(let a): copy(a)
    case .f16(let a): copy(a)
    case .bf16(let a): copy(a)
    case .i32(let a): copy(a)
    case .u8(let a): copy(a)
    }
    return CPUStorage(plain: buffer, type: host.type)
  }

  /// The values row-major, reordered (once, then kept) from a oneDNN layout if need be.
  public func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    let s = try cpuStorage(storage, op: "download")
    guard s.type == type else {
      throw TensorError(op: "download", operands: [type], "the buffer holds \(s.type)")
    }
    let buffer = try withDNNLErrors(op: "download", [type]) { try s.plainBuffer() }
    let n = type.shape.count
    func read<T>(_: T.Type) -> [T] {
      Array(UnsafeBufferPointer(start: buffer.pointer.assumingMemoryBound(to: T.self), count: n))
    }
    let data: HostData
    switch type.dtype {
    case .f64: data = .f64(read(Double.self))
    case .f32: data = .f32(read(Float.self))
    case .f16: data = .f16(read(Float16.self))
    case .bf16: data = .bf16(read(UInt16.self))
    case .i32: data = .i32(read(Int32.self))
    case .u8: data = .u8(read(UInt8.self))
    }
    return try HostTensor(shape: type.shape, data: data)
  }

  // MARK: Kernels

  /// oneDNN's kernel for convolutions, max pooling and ReLU (f32 only), the Swift kernel for
  /// other ops, or nil when neither exists.
  private func kernel(for kind: OpKind) -> ((any Primitive, [Operand], TensorType) throws -> any DeviceStorage)? {
    if let k = oneDNNKernel(kind) {
      return { op, inputs, output in
        let storages = try inputs.map { try self.cpuStorage($0.storage, op: kind.rawValue) }
        let types = inputs.map(\.type)
        guard types.allSatisfy({ $0.dtype == .f32 }) else {
          throw TensorError(
            op: kind.rawValue, operands: types, "the CPU backend computes this op in f32 only; cast the operands to f32")
        }
        return try withDNNLErrors(op: kind.rawValue, types) { try k(op, storages, output) }
      }
    }
    guard let k = SwiftKernels.table[kind] else { return nil }
    let blocked = blockedKernel(kind)
    return { op, inputs, output in
      if let blocked {
        let storages = try inputs.map { try self.cpuStorage($0.storage, op: kind.rawValue) }
        if let s = try withDNNLErrors(op: kind.rawValue, inputs.map(\.type), { try blocked(op, storages, output) }) { return s }
      }
      return try self.runPlain(k, op, inputs, output)
    }
  }

  /// The blocked-layout kernel for a crop, pad, concat or add (`BlockedKernels`): nil from it means
  /// the Swift kernel runs instead.
  private func blockedKernel(_ kind: OpKind) -> ((any Primitive, [CPUStorage], TensorType) throws -> CPUStorage?)? {
    switch kind {
    case .slice: return { op, s, out in try BlockedKernels.slice(op as! Slice, s[0], out) }
    case .pad: return { op, s, out in try BlockedKernels.pad(op as! Pad, s[0], out) }
    case .concat: return { op, s, out in try BlockedKernels.concat(op as! Concat, s, out) }
    case .add: return { _, s, out in try BlockedKernels.add(s[0], s[1], out) }
    default: return nil
    }
  }

  /// The oneDNN kernel for `kind`, if oneDNN does this op.
  private func oneDNNKernel(_ kind: OpKind) -> ((any Primitive, [CPUStorage], TensorType) throws -> CPUStorage)? {
    switch kind {
    case .conv2d: return { op, s, out in try ConvKernels.forward(op as! Conv2D, s, out) }
    case .conv2dBackwardData: return { op, s, out in try ConvKernels.backwardData(op as! Conv2DBackwardData, s, out) }
    case .conv2dBackwardFilter: return { op, s, out in try ConvKernels.backwardFilter(op as! Conv2DBackwardFilter, s, out) }
    case .maxPool2d: return { op, s, out in try PoolingKernels.forward(op as! MaxPool2D, s[0], out) }
    case .maxPool2dBackward: return { op, s, out in try PoolingKernels.backward(op as! MaxPool2DBackward, s[0], s[1], out) }
    case .relu: return { _, s, out in try ReLUKernels.forward(s[0], out) }
    case .reluBackward: return { _, s, out in try ReLUKernels.backward(s[0], s[1], out) }
    default: return nil
    }
  }

  /// Runs a Swift kernel on row-major views of the inputs and a fresh row-major output.
  private func runPlain(_ k: PlainKernel, _ op: any Primitive, _ inputs: [Operand], _ output: TensorType) throws -> any DeviceStorage {
    let types = inputs.map(\.type)
    let buffers = try inputs.map { operand in
      try withDNNLErrors(op: op.kind.rawValue, types) { try cpuStorage(operand.storage, op: op.kind.rawValue).plainBuffer() }
    }
    let out = HostBuffer(byteCount: output.shape.count * output.dtype.byteSize)
    try withExtendedLifetime(buffers) {
      try k(
        op, zip(types, buffers).map { PlainOperand(type: $0, pointer: UnsafeRawPointer($1.pointer)) },
        PlainOutput(type: output, pointer: out.pointer))
    }
    return CPUStorage(plain: out, type: output)
  }

  // MARK: Helpers

  func cpuStorage(_ storage: any DeviceStorage, op: String) throws -> CPUStorage {
    guard let s = storage as? CPUStorage else {
      throw TensorError(op: op, "a buffer that does not belong to the cpu backend; move the tensor with .to(_:)")
    }
    return s
  }
}

/// Runs `body`, turning a failed oneDNN call into a TensorError naming the op and its operands.
func withDNNLErrors<T>(op: String, _ operands: [TensorType], _ body: () throws -> T) throws -> T {
  do {
    return try body()
  } catch let failure as DNNLFailure {
    throw TensorError(op: op, operands: operands, failure.description)
  }
}
