// MARK: - Backends

/// A backend's own buffer for one tensor; only the backend that made it reads it.
public protocol DeviceStorage: AnyObject {}

/// An input to a kernel: the backend's buffer and the tensor's type.
public struct Operand {
  public let storage: any DeviceStorage
  public let type: TensorType
  public init(storage: any DeviceStorage, type: TensorType) {
    self.storage = storage
    self.type = type
  }
}

/// A place where tensors live and kernels run. Backends only add kernels: shape rules and gradients
/// belong to the ops.
public protocol Backend: AnyObject {
  /// Short name used in messages and tests, e.g. "reference", "cpu".
  var name: String { get }
  /// Copies host values into a new buffer of this backend.
  func upload(_ host: HostTensor) throws -> any DeviceStorage
  /// Copies a buffer back to host memory, row-major.
  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor
  /// Its kernels, registered once per primitive type (`KernelTable`).
  var kernels: KernelTable { get }
  /// What it runs on, for reports, e.g. "NVIDIA H100 80GB HBM3 (sm_90)"; `name` by default.
  var deviceDescription: String { get }
  /// The most bytes of memory its tensors held at once since `resetPeakMemory()`; nil for a
  /// backend that does not count them (the process's peak RSS tells its host memory).
  var peakMemoryBytes: Int? { get }
  /// Starts a new peak of `peakMemoryBytes`.
  func resetPeakMemory()
  /// Waits until the work queued so far is done (a GPU's stream); a no-op by default, for backends
  /// whose kernels finish before they return.
  func synchronize() throws
  /// True when convolutions run in f16 and bf16 (with the casts, pooling and elementwise ops
  /// around them), so that a half-precision compute type is worth asking for. Default: false.
  var halfPrecisionConvolutions: Bool { get }
  /// True when convolutions run in bf16 (a CPU with AVX-512 BF16 has these without f16 ones).
  /// Default: `halfPrecisionConvolutions`.
  var bf16Convolutions: Bool { get }
  /// Why bf16 convolutions are missing on this machine, for people (e.g. the processor lacks the
  /// instructions); nil by default.
  var bf16Unavailability: String? { get }
  /// True when f32 convolutions may use TF32 tensor-core math (10-bit mantissa products, f32
  /// accumulation) when asked to. Default: false.
  var tf32Convolutions: Bool { get }
  /// True when a training step's optimizer update should run as the one `multiTensorAdam` op,
  /// which decides on the device and leaves the step's state for the host to read when it wants:
  /// worth it where each op is a launch and each read a synchronisation (a GPU). Default: false (the per-parameter ops, as fast on the host).
  var multiTensorOptimizer: Bool { get }
  /// True when a model's skip connection should run as the one `cropConcat` op (its gradient one
  /// `cropConcatBackward`): worth it where each op is a launch (a GPU). Default: false (a crop and
  /// a concat, whose inputs a compiled program on the host writes in place: `ConcatInPlace`).
  var fusesCropConcat: Bool { get }
  /// An arena of `bytes` in which its kernels place a replayed program's planned values
  /// (`OutputPlacement`), or nil when its kernels never place outputs (the default: a replay then
  /// lets each kernel allocate).
  func makeArena(bytes: Int) throws -> (any DeviceArena)?
  /// How `storage`, just made by one of its kernels, holds its value (`StorageFootprint`), so that a
  /// memory plan reserves what the kernel will ask for and keeps views with their buffers; nil when
  /// it does not say (the default; a backend with an arena must say).
  func footprint(of storage: any DeviceStorage) -> StorageFootprint?
  /// Whether `output`, just made by concatenating `inputs` along `axis`, holds each input's buffer
  /// bytes one after another, as they are, with nothing else (so that a compiled program may write
  /// the inputs in place: `ConcatInPlace`); false by default.
  func concatenatesContiguously(_ inputs: [any DeviceStorage], into output: any DeviceStorage, axis: Int) -> Bool
  /// The kernel source a backend generates for `op` on inputs of `inputs`' types (CUDA C for NVRTC), for dumps of a compiled
  /// program; nil where it runs a fused op without generating code (the default).
  func generatedSource(for op: FusedElementwise, inputs: [TensorType]) -> String?
}

extension Backend {
  public var deviceDescription: String { name }
  public var peakMemoryBytes: Int? { nil }
  public func resetPeakMemory() {}
  public func synchronize() throws {}
  public var halfPrecisionConvolutions: Bool { false }
  public var bf16Convolutions: Bool { halfPrecisionConvolutions }
  public var bf16Unavailability: String? { nil }
  public var tf32Convolutions: Bool { false }
  public var multiTensorOptimizer: Bool { false }
  public var fusesCropConcat: Bool { false }
  public func makeArena(bytes: Int) throws -> (any DeviceArena)? { nil }
  public func footprint(of storage: any DeviceStorage) -> StorageFootprint? { nil }
  public func concatenatesContiguously(_ inputs: [any DeviceStorage], into output: any DeviceStorage, axis: Int) -> Bool { false }
  public func generatedSource(for op: FusedElementwise, inputs: [TensorType]) -> String? { nil }

  /// Op kinds this backend has no kernel for.
  public var missingKernels: [OpKind] { OpKind.allCases.filter { !kernels.covers($0) } }
}
