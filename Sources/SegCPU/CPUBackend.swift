import CDNNL
import Foundation
import SegCore

// MARK: - CPU backend

/// The CPU backend: oneDNN (Debian's libdnnl) for convolutions, max pooling and ReLU, keeping
/// their tensors in oneDNN's blocked layouts between ops (crops, pads, concats, adds and
/// per-channel sums of blocked tensors too), and Swift kernels over row-major buffers for every
/// other op and for ReLU in other dtypes. Tensors go in and out row-major (NHWC).
public final class CPUBackend: Backend, @unchecked Sendable {
  /// The one CPU backend.
  public static let shared = CPUBackend()

  /// "cpu".
  public let name = "cpu"

  /// The kernel table, built once: per primitive type, in the order tried, "blocked" (ops on
  /// oneDNN's blocked layouts, declining other operands), "winograd" (3x3 stride-1 convolutions
  /// in f32), "onednn" (f32, and bf16 where the processor has AVX-512 BF16; declining other
  /// dtypes), "bf16" (Swift arithmetic on bf16 through f32), "swift" (row-major Swift kernels) and
  /// "separate" (an op the compiler joins run as the ops it joins).
  public let kernels: KernelTable

  /// A backend of its own (tests: its program arenas are taken by no other test's replays).
  init() {
    var table = KernelTable(backendName: "cpu")
    Self.registerBlockedKernels(in: &table)
    Self.registerWinogradKernels(in: &table)
    Self.registerOneDNNKernels(in: &table)
    Self.registerBF16Kernels(in: &table)
    Self.registerSwiftKernels(in: &table)
    kernels = table
  }

  /// Applies `options` (a program does this once, with the options read from its environment).
  public func configure(_ options: CPUBackendOptions) {
    recycledBufferLimit = options.recycledBufferLimit
    ConvAlgorithm.configured = options.convAlgorithm
  }

  /// The settings in force: the defaults until `configure(_:)`.
  public var options: CPUBackendOptions {
    CPUBackendOptions(recycledBufferLimit: recycledBufferLimit, convAlgorithm: ConvAlgorithm.configured)
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

  /// True on processors with AVX-512 BF16 or AMX-BF16 (`CPUFeatures`): oneDNN convolves bf16
  /// there with f32 accumulation. There are no f16 convolutions on the CPU.
  public var bf16Convolutions: Bool { CPUFeatures.current.bf16Convolutions }

  /// Why `bf16Convolutions` is false on this machine, nil when it is true.
  public var bf16Unavailability: String? { CPUFeatures.current.bf16Unavailability }

  /// The processor and the ISA oneDNN runs on, e.g. "AMD EPYC 9R14 (oneDNN avx512_core_bf16)",
  /// so that a benchmark record says which kernels ran.
  public var deviceDescription: String {
    "\(CPUFeatures.current.modelName ?? name) (oneDNN \(CPUFeatures.oneDNNISA))"
  }

  // MARK: Arenas

  /// One buffer of `bytes` whose regions replayed kernels write their outputs into.
  public func makeArena(bytes: Int) throws -> (any DeviceArena)? { CPUArena(bytes: bytes) }

  /// The buffer `storage` was made in: its bytes and identity (a view made over another tensor's
  /// buffer names that buffer).
  public func footprint(of storage: any DeviceStorage) -> StorageFootprint? {
    guard let s = storage as? CPUStorage else { return nil }
    return StorageFootprint(bytes: s.origin.byteCount, memory: ObjectIdentifier(s.origin))
  }

  /// True for a channel concat of one image that the blocked kernel made from inputs in its own
  /// channel-blocked format (`BlockedKernels.concatenatesContiguously`).
  public func concatenatesContiguously(_ inputs: [any DeviceStorage], into output: any DeviceStorage, axis: Int) -> Bool {
    guard axis == 3, let out = output as? CPUStorage else { return false }
    let xs = inputs.compactMap { $0 as? CPUStorage }
    return xs.count == inputs.count && BlockedKernels.concatenatesContiguously(xs, into: out)
  }

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
    let s = try Self.cpuStorage(storage, op: "download")
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

  // MARK: Helpers

  /// `storage` as the CPU's own, or an error naming `op` for a buffer of another backend.
  static func cpuStorage(_ storage: any DeviceStorage, op: String) throws -> CPUStorage {
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
