import CCUDA
import Foundation

// MARK: - Driver

/// The CUDA driver, loaded and initialised (cuInit) once per process.
public final class CUDADriver: @unchecked Sendable {
  public let api: DriverAPI
  /// The CUDA version the driver supports, e.g. 13000 for 13.0.
  public let version: Int
  /// The loader it came from, which finds the other libraries (cuBLAS for the ceilings) in the same places.
  public let loader: CUDALoader

  /// Loads libcuda.so.1 through `loader` and initialises it; the error says what is missing.
  public init(loader: CUDALoader) throws {
    self.loader = loader
    api = try DriverAPI.load(loader)
    try api.check(api.cuInit(0), "cuInit")
    var v: Int32 = 0
    try api.check(api.cuDriverGetVersion(&v), "cuDriverGetVersion")
    version = Int(v)
  }

  /// "13.0" for 13000.
  public var versionString: String { "\(version / 1000).\(version % 1000 / 10)" }

  /// Number of CUDA devices (0 when the driver sees none).
  public func deviceCount() throws -> Int {
    var n: Int32 = 0
    let status = api.cuDeviceGetCount(&n)
    if status == 100 { return 0 }  // CUDA_ERROR_NO_DEVICE
    try api.check(status, "cuDeviceGetCount")
    return Int(n)
  }

  /// What device `ordinal` is.
  public func device(_ ordinal: Int) throws -> CUDADeviceInfo {
    var dev: ccuda_CUdevice = 0
    try api.check(api.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
    var name = [CChar](repeating: 0, count: 256)
    try api.check(api.cuDeviceGetName(&name, Int32(name.count), dev), "cuDeviceGetName")
    var bytes = 0
    try api.check(api.cuDeviceTotalMem(&bytes, dev), "cuDeviceTotalMem")
    func attribute(_ a: Int32, _ what: String) throws -> Int {
      var v: Int32 = 0
      try api.check(api.cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute(\(what))")
      return Int(v)
    }
    return CUDADeviceInfo(
      ordinal: ordinal, handle: dev, name: String(cString: name),
      computeCapability: (
        try attribute(CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability major"),
        try attribute(CCUDA_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute capability minor")
      ),
      totalMemory: bytes,
      multiprocessors: try attribute(CCUDA_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessor count"),
      clockKHz: try attribute(CCUDA_DEVICE_ATTRIBUTE_CLOCK_RATE, "clock rate"),
      memoryClockKHz: try attribute(CCUDA_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, "memory clock rate"),
      memoryBusWidth: try attribute(CCUDA_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, "memory bus width"))
  }
}

/// What a CUDA device is.
public struct CUDADeviceInfo: Sendable {
  public let ordinal: Int
  /// The driver's CUdevice for it.
  let handle: Int32
  public let name: String
  public let computeCapability: (major: Int, minor: Int)
  /// Bytes of device memory.
  public let totalMemory: Int
  public let multiprocessors: Int
  public let clockKHz: Int
  public let memoryClockKHz: Int
  public let memoryBusWidth: Int

  /// "sm_90" for compute capability 9.0.
  public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }
}

// MARK: - Context

/// A device's primary context (the one the CUDA runtime, cuBLAS and cuDNN share), with one
/// non-blocking stream; every call makes the context current on the calling thread first.
public final class CUDAContext: @unchecked Sendable {
  public let driver: CUDADriver
  public let device: CUDADeviceInfo
  let handle: ccuda_CUcontext
  /// The stream all work of this context is queued on, in order.
  let stream: ccuda_CUstream
  /// The caching allocator of this context's device memory (every `allocate` and `free`).
  public let memory: CachingAllocator
  /// Page-locked buffers for uploads and downloads.
  public let staging: PinnedStagingPool
  private var api: DriverAPI { driver.api }

  public init(driver: CUDADriver, ordinal: Int = 0) throws {
    self.driver = driver
    device = try driver.device(ordinal)
    var ctx: ccuda_CUcontext? = nil
    try driver.api.check(driver.api.cuDevicePrimaryCtxRetain(&ctx, device.handle), "cuDevicePrimaryCtxRetain")
    guard let ctx else { throw CUDAError(.callFailed, "cuDevicePrimaryCtxRetain returned no context") }
    handle = ctx
    try CurrentContext.make(ctx, api: driver.api)
    var s: ccuda_CUstream? = nil
    try driver.api.check(driver.api.cuStreamCreate(&s, UInt32(CCUDA_STREAM_NON_BLOCKING)), "cuStreamCreate")
    guard let s else { throw CUDAError(.callFailed, "cuStreamCreate returned no stream") }
    stream = s
    let raw = CUDADeviceMemory(api: driver.api, context: ctx, stream: s, description: device.name)
    memory = CachingAllocator(raw: raw)
    staging = PinnedStagingPool(host: raw)
  }

  deinit {
    try? CurrentContext.make(handle, api: api)
    // Blocks still in use belong to storages that hold this context, so by now all are cached.
    _ = try? memory.emptyCache()
    try? staging.releaseAll()
    _ = api.cuStreamDestroy(stream)
    _ = api.cuDevicePrimaryCtxRelease(device.handle)
  }

  /// Runs `body` with this context current on the calling thread.
  func current<R>(_ body: () throws -> R) throws -> R {
    try CurrentContext.make(handle, api: api)
    return try body()
  }

  // MARK: - Memory

  /// Free and total device memory in bytes.
  public func memoryInfo() throws -> (free: Int, total: Int) {
    try current {
      var free = 0, total = 0
      try api.check(api.cuMemGetInfo(&free, &total), "cuMemGetInfo")
      return (free, total)
    }
  }

  /// A block of at least `bytes` bytes from the caching allocator (a device allocation only when
  /// no freed block of its size class is cached); out of memory, a clear error after one retry.
  public func allocate(_ bytes: Int) throws -> UInt64 { try memory.allocate(bytes) }

  /// Returns a block to the caching allocator, without waiting: the work queued before keeps using
  /// it, and only work queued later gets it again (one stream, in order).
  public func free(_ pointer: UInt64) { memory.free(pointer) }

  /// Copies host bytes to the device through a pinned staging buffer and returns once the copy is
  /// queued (the host bytes may be reused at once). Where page-locked memory cannot be had, the
  /// copy is made from the host bytes and waited for.
  public func upload(_ bytes: UnsafeRawBufferPointer, to pointer: UInt64) throws {
    guard bytes.count > 0, let base = bytes.baseAddress else { return }
    try inChunks(
      bytes.count,
      direct: { offset, n in
        try api.check(api.cuMemcpyHtoDAsync(pointer + UInt64(offset), base + offset, n, stream), "cuMemcpyHtoDAsync")
      },
      staged: { offset, n, buffer in
        buffer.pointer.copyMemory(from: base + offset, byteCount: n)
        do {
          try current {
            try api.check(api.cuMemcpyHtoDAsync(pointer + UInt64(offset), buffer.pointer, n, stream), "cuMemcpyHtoDAsync")
          }
        } catch {
          try? staging.release(buffer, copyQueued: false)
          throw error
        }
        try staging.release(buffer, copyQueued: true)
      })
  }

  /// Copies device bytes to the host after the queued work, through a pinned staging buffer, and
  /// waits.
  public func download(_ pointer: UInt64, into bytes: UnsafeMutableRawBufferPointer) throws {
    guard bytes.count > 0, let base = bytes.baseAddress else { return }
    try inChunks(
      bytes.count,
      direct: { offset, n in
        try api.check(api.cuMemcpyDtoHAsync(base + offset, pointer + UInt64(offset), n, stream), "cuMemcpyDtoHAsync")
      },
      staged: { offset, n, buffer in
        var done = false
        defer { try? staging.release(buffer, copyQueued: !done) }
        try current {
          try api.check(api.cuMemcpyDtoHAsync(buffer.pointer, pointer + UInt64(offset), n, stream), "cuMemcpyDtoHAsync")
          try api.check(api.cuStreamSynchronize(stream), "cuStreamSynchronize")
        }
        done = true
        (base + offset).copyMemory(from: buffer.pointer, byteCount: n)
      })
  }

  /// Splits a host-device copy of `count` bytes into staging-sized chunks: `staged(offset, n,
  /// buffer)` with a pinned buffer of the pool, or, where page-locked memory cannot be had,
  /// `direct(offset, n)` with the context current, then waited for.
  private func inChunks(
    _ count: Int, direct: (Int, Int) throws -> Void, staged: (Int, Int, PinnedStagingPool.Buffer) throws -> Void
  ) throws {
    var offset = 0
    while offset < count {
      let n = min(staging.chunkBytes, count - offset)
      if let buffer = try? staging.acquire(n) {
        try staged(offset, n, buffer)
      } else {
        try current {
          try direct(offset, n)
          try api.check(api.cuStreamSynchronize(stream), "cuStreamSynchronize")
        }
      }
      offset += n
    }
  }

  /// Queues a device-to-device copy.
  public func copy(from source: UInt64, to destination: UInt64, bytes: Int) throws {
    guard bytes > 0 else { return }
    try current { try api.check(api.cuMemcpyDtoDAsync(destination, source, bytes, stream), "cuMemcpyDtoDAsync") }
  }

  /// Queues filling `bytes` bytes with `value`.
  public func fill(_ pointer: UInt64, byte value: UInt8, bytes: Int) throws {
    guard bytes > 0 else { return }
    try current { try api.check(api.cuMemsetD8Async(pointer, value, bytes, stream), "cuMemsetD8Async") }
  }

  /// Waits for all queued work; a kernel's failure surfaces here.
  public func synchronize() throws {
    try current { try api.check(api.cuStreamSynchronize(stream), "cuStreamSynchronize") }
  }

  // MARK: - Modules and launches

  /// Loads compiled code; the module stays loaded for the life of the context.
  public func loadModule(_ module: CompiledModule, name: String) throws -> CUDAModule {
    try current {
      var m: ccuda_CUmodule? = nil
      try module.image.withUnsafeBytes { b in
        try api.check(api.cuModuleLoadData(&m, b.baseAddress), "cuModuleLoadData(\(name))")
      }
      guard let m else { throw CUDAError(.callFailed, "cuModuleLoadData(\(name)) returned no module") }
      return CUDAModule(name: name, handle: m)
    }
  }

  /// The kernel `name` of a loaded module.
  public func function(_ name: String, in module: CUDAModule) throws -> ccuda_CUfunction {
    try current {
      var f: ccuda_CUfunction? = nil
      try api.check(api.cuModuleGetFunction(&f, module.handle, name), "cuModuleGetFunction(\(module.name).\(name))")
      guard let f else { throw CUDAError(.callFailed, "cuModuleGetFunction(\(name)) returned no function") }
      return f
    }
  }

  /// Queues a 1-D launch of `blocks` x `threads` with `arguments` in the kernel's parameter order.
  public func launch(
    _ function: ccuda_CUfunction, name: String, blocks: Int, threads: Int, arguments: [KernelArgument]
  ) throws {
    guard blocks > 0 else { return }
    // cuLaunchKernel copies each parameter from the pointer given for it before returning.
    try KernelArgument.withParameters(arguments) { params in
      try current {
        try api.check(
          api.cuLaunchKernel(function, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, 0, stream, params, nil),
          "cuLaunchKernel(\(name), \(blocks)x\(threads))")
      }
    }
  }
}

/// A loaded module.
public struct CUDAModule: @unchecked Sendable {
  public let name: String
  let handle: ccuda_CUmodule
}

// MARK: - Kernel arguments

/// One kernel parameter, as the bytes the kernel reads (C layout of the kernel's parameter type).
public enum KernelArgument: Sendable {
  /// A device address (any `T*`).
  case pointer(UInt64)
  case int64(Int64)
  case uint64(UInt64)
  case int32(Int32)
  case float(Float)
  case double(Double)
  /// The kernels' `Dims` struct: rank, then up to 8 extents (padded with 1).
  case dims([Int])
  /// The kernels' `Vec` struct: up to 8 values (padded with 0).
  case vec([Int])
  /// A struct of 64-bit integers (e.g. the pooling kernels' `Pool`).
  case int64s([Int])

  /// The most axes a kernel index space has.
  public static let maxRank = 8

  var bytes: [UInt8] {
    func raw<T>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    func words(_ values: [Int64]) -> [UInt8] { values.flatMap { raw($0) } }
    switch self {
    case .pointer(let p): return raw(p)
    case .int64(let v): return raw(v)
    case .uint64(let v): return raw(v)
    case .int32(let v): return raw(v)
    case .float(let v): return raw(v)
    case .double(let v): return raw(v)
    case .dims(let d):
      precondition(d.count <= Self.maxRank, "a kernel index space has at most \(Self.maxRank) axes")
      return words([Int64(d.count)] + (d + Array(repeating: 1, count: Self.maxRank - d.count)).map(Int64.init))
    case .vec(let v):
      precondition(v.count <= Self.maxRank, "a kernel vector has at most \(Self.maxRank) entries")
      return words((v + Array(repeating: 0, count: Self.maxRank - v.count)).map(Int64.init))
    case .int64s(let v): return words(v.map(Int64.init))
    }
  }

  /// The bytes the kernel reads for this argument.
  var byteCount: Int {
    switch self {
    case .pointer, .int64, .uint64, .double: return 8
    case .int32, .float: return 4
    case .dims: return 8 * (Self.maxRank + 1)
    case .vec: return 8 * Self.maxRank
    case .int64s(let v): return 8 * v.count
    }
  }

  /// Writes the argument's bytes at `p` (aligned to 8), as `bytes` lists them, without an array.
  func write(to p: UnsafeMutableRawPointer) {
    func words(_ count: Int, _ word: (Int) -> Int64) {
      for i in 0..<count { p.storeBytes(of: word(i), toByteOffset: 8 * i, as: Int64.self) }
    }
    switch self {
    case .pointer(let v): p.storeBytes(of: v, as: UInt64.self)
    case .int64(let v): p.storeBytes(of: v, as: Int64.self)
    case .uint64(let v): p.storeBytes(of: v, as: UInt64.self)
    case .int32(let v): p.storeBytes(of: v, as: Int32.self)
    case .float(let v): p.storeBytes(of: v, as: Float.self)
    case .double(let v): p.storeBytes(of: v, as: Double.self)
    case .dims(let d):
      precondition(d.count <= Self.maxRank, "a kernel index space has at most \(Self.maxRank) axes")
      words(Self.maxRank + 1) { i in i == 0 ? Int64(d.count) : Int64(i - 1 < d.count ? d[i - 1] : 1) }
    case .vec(let v):
      precondition(v.count <= Self.maxRank, "a kernel vector has at most \(Self.maxRank) entries")
      words(Self.maxRank) { i in Int64(i < v.count ? v[i] : 0) }
    case .int64s(let v): words(v.count) { Int64(v[$0]) }
    }
  }

  /// Calls `body` with one pointer per argument to a copy of its bytes (the `void**` that
  /// cuLaunchKernel takes), valid during the call: one block on the stack holds every argument
  /// (each at a 16-byte aligned offset) and the pointer array, so a launch allocates nothing.
  public static func withParameters<T>(
    _ arguments: [KernelArgument], _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> T
  ) rethrows -> T {
    var total = 0
    for a in arguments { total += (max(a.byteCount, 8) + 15) & ~15 }
    return try withUnsafeTemporaryAllocation(byteCount: max(total, 16), alignment: 16) { block in
      try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(arguments.count, 1)) { params in
        var offset = 0
        for (i, a) in arguments.enumerated() {
          let p = block.baseAddress! + offset
          a.write(to: p)
          params[i] = p
          offset += (max(a.byteCount, 8) + 15) & ~15
        }
        return try body(params.baseAddress!)
      }
    }
  }
}
