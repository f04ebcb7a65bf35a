import CCUDA
import Foundation
import SegCore

// MARK: - Where kernels run

/// What the CUDA backend needs from a device: memory and kernel launches by name. The GPU
/// implementation is `GPUKernelDevice`; tests also run the same kernels on a host emulator
/// (the kernel sources compiled as C++), so the backend's logic is checked without a GPU.
public protocol KernelDevice: AnyObject, Sendable {
  /// For messages, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
  var description: String { get }
  /// A new allocation of `bytes` (at least 1), as a device address.
  func allocate(_ bytes: Int) throws -> UInt64
  /// Frees an allocation once the work queued before it is done.
  func free(_ pointer: UInt64)
  /// Copies host bytes to the device (after the queued work).
  func upload(_ bytes: UnsafeRawBufferPointer, to pointer: UInt64) throws
  /// Copies device bytes to the host after the queued work.
  func download(_ pointer: UInt64, into bytes: UnsafeMutableRawBufferPointer) throws
  /// Queues a device-to-device copy.
  func copy(from source: UInt64, to destination: UInt64, bytes: Int) throws
  /// Queues filling `bytes` bytes with `value`.
  func fill(_ pointer: UInt64, byte value: UInt8, bytes: Int) throws
  /// Queues kernel `kernel` (a handle of `KernelLibrary`, resolved by op and dtype) over `count`
  /// work items (its grid-stride loop covers them whatever the launch shape).
  func launch(_ kernel: KernelHandle, count: Int, arguments: [KernelArgument]) throws
  /// Notes a call into a vendor library that queues device work (a cuDNN convolution), so that a
  /// recording device counts it beside the launches; devices that run work need not act.
  func libraryCall(_ name: String)
  /// Starts recording the work queued from now on into a graph instead of running it
  /// (`DeviceGraph.swift`); devices that cannot capture throw.
  func beginCapture() throws
  /// Ends the capture; the graph's work has not run yet.
  func endCapture() throws -> any CapturedGraph
  /// Ends a failed capture, discarding its work.
  func abandonCapture()
  /// Queues all of a captured graph's work as one launch.
  func launchGraph(_ graph: any CapturedGraph) throws
}

extension KernelDevice {
  public func libraryCall(_ name: String) {}
}

// MARK: - GPU

/// Kernels on a CUDA GPU: each kernel family is compiled by NVRTC for the device at the first
/// launch of one of its kernels (or read from the CUBIN cache), then loaded once.
public final class GPUKernelDevice: KernelDevice, @unchecked Sendable {
  public let context: CUDAContext
  public let compiler: NVRTCCompiler
  /// The compilation target: sm_XY, or PTX for a GPU newer than NVRTC.
  public let target: (architecture: Int, ptx: Bool)
  private var modules: [String: CUDAModule] = [:]
  /// Loaded functions by kernel handle (`KernelLibrary.handle`, `GeneratedKernels`), filled at each
  /// kernel's first launch.
  private var functions = [ccuda_CUfunction?](repeating: nil, count: KernelLibrary.allKernels.count)
  private let lock = NSLock()

  /// The capture under way, if any (`DeviceGraph.swift`).
  let capture = GraphCaptureState()

  /// Threads per block of every launch, and the most blocks (the grid-stride loops cover the rest).
  static let threads = 256
  static let maxBlocks = 65_535

  public init(context: CUDAContext, compiler: NVRTCCompiler) throws {
    self.context = context
    self.compiler = compiler
    let cc = context.device.computeCapability
    guard let t = compiler.target(computeCapability: cc.major, cc.minor) else {
      throw CUDAError(
        .unsupported,
        "NVRTC \(compiler.version.major).\(compiler.version.minor) cannot compile for \(context.device.architecture) "
          + "(it supports sm_\(compiler.supportedArchitectures.min() ?? 0) and newer)")
    }
    target = t
  }

  public var description: String { "\(context.device.name) (\(context.device.architecture))" }
  /// A cuDNN call queues its kernels on the stream: inside a capture they join the graph.
  public func libraryCall(_ name: String) { capture.note() }

  // Memory goes through the context's caching allocator and pinned staging buffers.
  public func allocate(_ bytes: Int) throws -> UInt64 { try context.allocate(bytes) }
  public func free(_ pointer: UInt64) { if !capture.keep(pointer) { context.free(pointer) } }
  /// The caching allocator's statistics (bytes in use, cached, peaks).
  public var memoryStatistics: DeviceMemoryStatistics { context.memory.statistics }
  public func upload(_ bytes: UnsafeRawBufferPointer, to pointer: UInt64) throws {
    if capture.isActive { return try capturedUpload(bytes, to: pointer) }
    try context.upload(bytes, to: pointer)
  }
  public func download(_ pointer: UInt64, into bytes: UnsafeMutableRawBufferPointer) throws {
    try capture.refuseHostRead()
    try context.download(pointer, into: bytes)
  }
  public func copy(from source: UInt64, to destination: UInt64, bytes: Int) throws {
    capture.note()
    try context.copy(from: source, to: destination, bytes: bytes)
  }
  public func fill(_ pointer: UInt64, byte value: UInt8, bytes: Int) throws {
    capture.note()
    try context.fill(pointer, byte: value, bytes: bytes)
  }

  public func launch(_ kernel: KernelHandle, count: Int, arguments: [KernelArgument]) throws {
    guard count > 0 else { return }
    let blocks = min((count + Self.threads - 1) / Self.threads, Self.maxBlocks)
    capture.note()
    try context.launch(try function(kernel), name: kernel.name, blocks: blocks, threads: Self.threads, arguments: arguments)
  }

  /// The loaded kernel, compiling and loading its family on first use.
  func function(_ kernel: KernelHandle) throws -> ccuda_CUfunction {
    lock.lock()
    defer { lock.unlock() }
    // Generated kernels (`GeneratedKernels`) come after the library's: the table grows to them.
    if kernel.index >= functions.count { functions += Array(repeating: nil, count: kernel.index + 1 - functions.count) }
    if let f = functions[kernel.index] { return f }
    let family = kernel.family
    let module: CUDAModule
    if let m = modules[family.name] {
      module = m
    } else {
      let code = try compiler.compile(
        family.source, name: "\(family.name).cu", architecture: target.architecture, ptx: target.ptx)
      module = try context.loadModule(code, name: family.name)
      modules[family.name] = module
    }
    let f = try context.function(kernel.name, in: module)
    functions[kernel.index] = f
    return f
  }
}
