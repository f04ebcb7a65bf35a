import Foundation
import SegCore

// MARK: - CUDA backend

/// The CUDA backend: NVRTC-compiled kernels (Kernels/*.swift) for every op but the convolutions,
/// which go to cuDNN. Tensors live in device memory, row-major (NHWC), one allocation each; all
/// work is queued on one stream, in order.
///
/// The kernels and this class also run in the test suite on a host emulator of the kernel sources
/// (`Tests/SegCUDATests`), against the reference backend; on a GPU, `unet doctor --check` runs
/// every op against the CPU backend.
public final class CUDABackend: Backend, @unchecked Sendable {
  /// "cuda".
  public let name = "cuda"
  /// Where kernels run.
  public let device: any KernelDevice
  /// cuDNN's convolutions (or the tests' host stand-in for them); nil where there is neither, so
  /// convolution kernels are absent.
  let convolutions: (any ConvolutionLibrary)?
  /// The same through cuDNN's graph API, tried first; nil with UNET_CUDNN_GRAPH=0 or a cuDNN without it.
  let graphConvolutions: CUDNNGraphConvolutions?
  /// Row-major filters reordered for the convolution library, once per buffer (trained ones are kept OHWI).
  let filterLayouts = FilterLayouts()
  /// The tickets of one-launch sums (`sumRows`).
  let reductionCounters: ReductionCounters
  /// Whether work is being captured into a graph now (`CUDACapture.swift`).
  var capturing = false
  /// Whether `--profile` may trace through CUPTI (`CUDAOptions.activityTracing`).
  let activityTracing: Bool
  /// The kernel table (`CUDAKernelTable.swift`): every primitive type, the convolutions only with cuDNN.
  public private(set) var kernels = KernelTable(backendName: "cuda")

  /// A backend over `device`; `convolutions` supplies conv2d and its backward ops, after
  /// `graphConvolutions` where there is one; `activityTracing` false keeps `--profile` waiting per op.
  init(
    device: any KernelDevice, convolutions: (any ConvolutionLibrary)?, graphConvolutions: CUDNNGraphConvolutions? = nil,
    activityTracing: Bool = true
  ) {
    self.activityTracing = activityTracing
    self.device = device
    reductionCounters = ReductionCounters(device: device)
    self.convolutions = convolutions
    self.graphConvolutions = graphConvolutions
    kernels = makeKernelTable()
  }

  /// The backend on GPU `ordinal`: loads the driver, NVRTC and cuDNN where `options` says (the
  /// error names what is missing and how to install it), retains the device's primary context.
  /// With `tensorFloat32`, f32 convolutions may use TF32 Tensor Cores (10-bit mantissa products,
  /// f32 accumulation). The CLI reads `options` from the environment (`CUDAOptions(environment:)`).
  public static func gpu(ordinal: Int = 0, tensorFloat32: Bool = false, options: CUDAOptions = CUDAOptions()) throws -> CUDABackend {
    let loader = CUDALoader(options: options)
    let driver = try CUDADriver(loader: loader)
    let count = try driver.deviceCount()
    guard ordinal < count else {
      throw CUDAError(
        .noDevice,
        count == 0
          ? "the CUDA driver sees no GPU: check `nvidia-smi` and CUDA_VISIBLE_DEVICES"
          : "there is no GPU \(ordinal): the driver sees \(count)")
    }
    let context = try CUDAContext(driver: driver, ordinal: ordinal)
    let compiler = try NVRTCCompiler(api: try NVRTCAPI.load(loader), options: options)
    let device = try GPUKernelDevice(context: context, compiler: compiler)
    let cudnn = try CUDNNAPI.load(loader)
    let convolutions = try CUDNNConvolutions(
      api: cudnn, context: context, tensorFloat32: tensorFloat32, deterministic: options.deterministicConvolutions)
    var graph: CUDNNGraphConvolutions? = nil
    if options.cudnnGraph {
      do { graph = try graphConvolutions(cudnn, convolutions, ordinal: ordinal, options: options) } catch {
        FileHandle.standardError.write(Data("cudnn-graph: off (\(error)); the legacy cuDNN API runs every convolution\n".utf8))
      }
    }
    return CUDABackend(device: device, convolutions: convolutions, graphConvolutions: graph, activityTracing: options.activityTracing)
  }

  /// The graph API's convolutions, with their plans stored per cuDNN version and GPU (named from
  /// cuDNN's own description of the device, or the driver's name and architecture).
  private static func graphConvolutions(
    _ cudnn: CUDNNAPI, _ legacy: CUDNNConvolutions, ordinal: Int, options: CUDAOptions
  ) throws -> CUDNNGraphConvolutions {
    let api = try CUDNNGraphAPI.load(cudnn)
    let info = legacy.context.device
    let cc = info.computeCapability
    let description = try? legacy.context.current { try CuDNNDeviceDescription.current(ordinal: ordinal, api: api) }
    let name = description?.cacheName
      ?? CuDNNDeviceDescription.cacheName(deviceName: info.name, deviceVersion: cc.major * 100 + cc.minor * 10)
    let store = PlanStore(folder: options.cudnnPlanCacheDirectory, cudnnVersion: api.version, device: name)
    return CUDNNGraphConvolutions(api: api, legacy: legacy, store: store, device: try? description?.descriptor(api))
  }

  // MARK: Transfers

  /// Copies row-major host values (any dtype) into a new device buffer.
  public func upload(_ host: HostTensor) throws -> any DeviceStorage {
    let storage = try CUDAStorage(device: device, type: host.type)
    func copy<T>(_ a: [T]) throws {
      try a.withUnsafeBytes { bytes in
        try device.upload(bytes, to: storage.pointer)
        if a.count > 1, Self.repeatsOneElement(bytes, MemoryLayout<T>.stride) { storage.layout = .uniform }
      }
    }
    switch host.data {
    case .f64(let a): try copy(a)
    case .f32(let a): try copy(a)
    case .f16(let a): try copy(a)
    case .bf16(let a): try copy(a)
    case .i32(let a): try copy(a)
    case .u8(let a): try copy(a)
    }
    return storage
  }

  /// The values, row-major, after the queued work.
  public func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    let s = try cudaStorage(storage, op: "download")
    guard s.type == type else { throw TensorError(op: "download", operands: [type], "the buffer holds \(s.type)") }
    let n = type.shape.count
    func read<T>(_ zero: T) throws -> [T] {
      var a = [T](repeating: zero, count: n)
      try a.withUnsafeMutableBytes { try device.download(s.pointer, into: $0) }
      return s.layout == .filterOHWI ? Self.hwio(fromOHWI: a, type.shape) : a
    }
    let data: HostData
    switch type.dtype {
    case .f64: data = .f64(try read(0.0))
    case .f32: data = .f32(try read(Float(0)))
    case .f16: data = .f16(try read(Float16(0)))
    case .bf16: data = .bf16(try read(UInt16(0)))
    case .i32: data = .i32(try read(Int32(0)))
    case .u8: data = .u8(try read(UInt8(0)))
    }
    return try HostTensor(shape: type.shape, data: data)
  }

  // MARK: Memory

  /// What the caching allocator holds on the GPU: bytes in use, cached, and their peaks (a
  /// benchmark's peak device memory is `peakInUseBytes`, or `peakReservedBytes` counting the
  /// cache); nil on a device without one (the host emulator).
  public var memoryStatistics: DeviceMemoryStatistics? { (device as? GPUKernelDevice)?.memoryStatistics }

  /// cuDNN convolves f16 and bf16 on Tensor Cores, and every other op has f16 and bf16 kernels.
  public var halfPrecisionConvolutions: Bool { convolutions != nil }

  /// TF32 exists from compute capability 8.0 (Ampere).
  public var tf32Convolutions: Bool {
    guard convolutions != nil, let gpu = device as? GPUKernelDevice else { return false }
    return gpu.context.device.computeCapability.major >= 8
  }

  /// A step's optimizer update is one `multiTensorAdam` (three launches and no host read: the loss
  /// scaler and Adam's step count stay on the device) rather than a dozen launches per parameter.
  public var multiTensorOptimizer: Bool { true }
  /// Each skip connection is one `cropConcat` launch forward and one `cropConcatBackward` launch
  /// backward (a crop, a concat's two copies, two slices and a pad otherwise).
  public var fusesCropConcat: Bool { true }

  /// Free device memory in bytes (cuMemGetInfo); nil on the emulator or when it cannot be asked.
  public var freeMemoryBytes: Int? { (device as? GPUKernelDevice).flatMap { try? $0.context.memoryInfo().free } }

  /// Waits for the stream (a kernel's failure surfaces here).
  public func synchronize() throws { try (device as? GPUKernelDevice)?.context.synchronize() }

  /// The GPU's name and architecture, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
  public var deviceDescription: String { device.description }

  /// The peak bytes held by tensors and workspaces (PyTorch's max_memory_allocated).
  public var peakMemoryBytes: Int? { memoryStatistics?.peakInUseBytes }

  /// Starts the peak counters over from what is held now (e.g. after a benchmark's warm-up).
  public func resetPeakMemory() { (device as? GPUKernelDevice)?.context.memory.resetPeak() }

  /// Gives the cached (freed) device memory back to the driver, after the queued work; returns the
  /// bytes released.
  @discardableResult
  public func emptyCache() throws -> Int { try (device as? GPUKernelDevice)?.context.memory.emptyCache() ?? 0 }

  // MARK: Helpers

  func cudaStorage(_ storage: any DeviceStorage, op: String) throws -> CUDAStorage {
    guard let s = storage as? CUDAStorage, s.device === device else {
      throw TensorError(op: op, "a buffer that does not belong to this cuda backend; move the tensor with .to(_:)")
    }
    return s
  }

  /// A fresh (uninitialised) buffer for `type`: its planned region of a replay's arena when the
  /// caller placed an output of exactly its bytes there (`CUDAArena.swift`), else a new block.
  func output(_ type: TensorType) throws -> CUDAStorage {
    if let placed = placedOutput(type) { return placed }
    return try CUDAStorage(device: device, type: type)
  }

  /// `output(_:)` for output `index` of a kernel of several outputs.
  func output(_ type: TensorType, index: Int) throws -> CUDAStorage {
    if let placed = placedOutput(type, index: index) { return placed }
    return try CUDAStorage(device: device, type: type)
  }

  /// The output's dtype when it is floating and every operand has it (what the arithmetic kernels
  /// are instantiated for); nil otherwise, so that the kernel declines.
  func floatType(_ inputs: [DeviceOperand], _ output: TensorType) -> DType? {
    let d = output.dtype
    guard KernelNames.floats.contains(d), inputs.allSatisfy({ $0.type.dtype == d }) else { return nil }
    return d
  }
}

// MARK: - Storage

/// A device block holding one tensor, row-major; given back to the device's allocator (on a GPU
/// the caching allocator, which reuses it without a synchronisation) when the last tensor using it
/// goes.
final class CUDAStorage: DeviceStorage, @unchecked Sendable {
  let device: any KernelDevice
  let pointer: UInt64
  let type: TensorType
  /// The arena the buffer is a region of (kept alive by it), or nil for a block of its own.
  let arena: CUDAArena?
  /// How its bytes are ordered (`StorageLayout`): set by the kernel that writes them.
  var layout = StorageLayout.rowMajor
  var bytes: Int { type.shape.count * type.dtype.byteSize }

  init(device: any KernelDevice, type: TensorType) throws {
    self.device = device
    self.type = type
    arena = nil
    pointer = try device.allocate(type.shape.count * type.dtype.byteSize)
  }

  /// The region of `arena` from `offset`, for a value of `type`.
  init(arena: CUDAArena, offset: Int, type: TensorType) {
    (device, self.type, self.arena) = (arena.device, type, arena)
    pointer = arena.pointer + UInt64(offset)
  }

  deinit { if arena == nil { device.free(pointer) } }
}

/// An input of a CUDA kernel: its device address and type (the storage keeps it alive).
struct DeviceOperand {
  let pointer: UInt64
  let type: TensorType
  let storage: CUDAStorage
}
