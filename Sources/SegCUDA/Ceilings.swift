import CCUDA
import Foundation

// MARK: - The device's ceilings

/// What this GPU can do at best, measured with CUDA events on the context's stream: copy bandwidth
/// (host to device and back through page-locked memory, device to device) and a large matrix
/// product's throughput through cuBLAS (fp32, TF32, fp16 and bf16 inputs, fp32 accumulation), so
/// that our kernels' throughput can be put against them. Measuring never throws: a failed
/// measurement is recorded in `errors`.
public struct Ceilings: Codable, Sendable {
  /// One copy: `bytes` per copy, the mean time of one, and bytes / time (a device-to-device copy
  /// reads and writes each byte, so its memory traffic is twice that).
  public struct Copy: Codable, Sendable {
    public let direction: String
    public let bytes: Int
    public let milliseconds: Double
    public let gigabytesPerSecond: Double
  }

  /// One matrix product C = A B of size^3: its mean time and 2 size^3 / time.
  public struct Matmul: Codable, Sendable {
    public let precision: String
    public let size: Int
    public let milliseconds: Double
    public let teraflopsPerSecond: Double
  }

  public let device: String
  public var copies: [Copy] = []
  public var matmuls: [Matmul] = []
  /// What could not be measured, and why.
  public var errors: [String] = []

  /// The measurements as a table.
  public var text: String {
    var lines = ["Ceilings on \(device):"]
    for c in copies {
      lines.append(
        "  copy \(c.direction.padding(toLength: 14, withPad: " ", startingAt: 0)) \(c.bytes >> 20) MiB  "
          + String(format: "%8.3f ms  %7.1f GB/s", c.milliseconds, c.gigabytesPerSecond))
    }
    for m in matmuls {
      lines.append(
        "  matmul \(m.precision.padding(toLength: 12, withPad: " ", startingAt: 0)) \(m.size)^3   "
          + String(format: "%8.3f ms  %7.1f TFLOP/s", m.milliseconds, m.teraflopsPerSecond))
    }
    lines += errors.map { "  not measured: \($0)" }
    return lines.joined(separator: "\n")
  }

  // MARK: Measuring

  /// Measures on `context`: copies of `copyBytes`, products of `matrixSize`^3 (halved while the
  /// free memory does not hold three fp32 matrices), each the mean of `repeats` after a warm-up;
  /// cuBLAS comes from `loader`, by default the one that loaded the context's driver.
  public static func measure(
    context: CUDAContext, loader: CUDALoader? = nil, copyBytes: Int = 256 << 20, matrixSize: Int = 8192, repeats: Int = 10
  ) -> Ceilings {
    var c = Ceilings(device: "\(context.device.name) (\(context.device.architecture))")
    do {
      try c.measureCopies(context, bytes: copyBytes, repeats: repeats)
    } catch {
      c.errors.append("copy bandwidth: \(error)")
    }
    do {
      try c.measureMatmuls(context, api: try CUBLASAPI.load(loader ?? context.driver.loader), size: matrixSize, repeats: repeats)
    } catch {
      c.errors.append("matrix product: \(error)")
    }
    return c
  }

  mutating func measureCopies(_ context: CUDAContext, bytes: Int, repeats: Int) throws {
    let api = context.driver.api
    let a = try context.allocate(bytes), b = try context.allocate(bytes)
    defer { [a, b].forEach { context.free($0) } }
    try context.fill(a, byte: 1, bytes: bytes)
    let ms = try Self.time(context, repeats: repeats) { try context.copy(from: a, to: b, bytes: bytes) }
    copies.append(Copy(direction: "DtoD", bytes: bytes, milliseconds: ms, gigabytesPerSecond: Double(bytes) / ms / 1e6))

    // Page-locked host memory, from the same allocator as the staging buffers: what the DMA
    // engines run at (pageable memory goes through a bounce buffer).
    let pinned = context.staging.host
    let host = try pinned.allocateHost(bytes)
    defer { pinned.freeHost(host) }
    host.initializeMemory(as: UInt8.self, repeating: 1, count: bytes)
    let stream = context.stream
    let up = try Self.time(context, repeats: repeats) {
      try api.check(api.cuMemcpyHtoDAsync(a, host, bytes, stream), "cuMemcpyHtoDAsync")
    }
    copies.append(Copy(direction: "HtoD (pinned)", bytes: bytes, milliseconds: up, gigabytesPerSecond: Double(bytes) / up / 1e6))
    let down = try Self.time(context, repeats: repeats) {
      try api.check(api.cuMemcpyDtoHAsync(host, a, bytes, stream), "cuMemcpyDtoHAsync")
    }
    copies.append(Copy(direction: "DtoH (pinned)", bytes: bytes, milliseconds: down, gigabytesPerSecond: Double(bytes) / down / 1e6))
  }

  mutating func measureMatmuls(_ context: CUDAContext, api: CUBLASAPI, size requested: Int, repeats: Int) throws {
    var n = requested
    let free = try context.memoryInfo().free
    while n > 512 && 3 * n * n * 4 + (256 << 20) > free { n /= 2 }
    let bytes = n * n * 4
    let a = try context.allocate(bytes), b = try context.allocate(bytes), c = try context.allocate(bytes)
    defer { [a, b, c].forEach { context.free($0) } }
    // 0x3C bytes: 0.0115 in fp32 and bf16, 1.06 in fp16, so no sum overflows fp16 at n = 8192.
    for p in [a, b, c] { try context.fill(p, byte: 0x3C, bytes: bytes) }

    var handle: ccuda_cublasHandle? = nil
    try context.current { try api.check(api.cublasCreate(&handle), "cublasCreate") }
    defer { _ = try? context.current { api.cublasDestroy(handle) } }
    try api.check(api.cublasSetStream(handle, context.stream), "cublasSetStream")

    let variants: [(String, Int32, Int32)] = [
      ("fp32", CCUDA_CUDA_R_32F, CCUDA_CUBLAS_COMPUTE_32F),
      ("tf32", CCUDA_CUDA_R_32F, CCUDA_CUBLAS_COMPUTE_32F_FAST_TF32),
      ("fp16", CCUDA_CUDA_R_16F, CCUDA_CUBLAS_COMPUTE_32F),
      ("bf16", CCUDA_CUDA_R_16BF, CCUDA_CUBLAS_COMPUTE_32F),
    ]
    var alpha: Float = 1, beta: Float = 0
    let (pa, pb, pc) = (UnsafeRawPointer(bitPattern: UInt(a)), UnsafeRawPointer(bitPattern: UInt(b)), UnsafeMutableRawPointer(bitPattern: UInt(c)))
    let m = Int32(n)
    for (name, dataType, compute) in variants {
      do {
        let ms = try Self.time(context, repeats: repeats) {
          try api.check(
            api.cublasGemmEx(
              handle, CCUDA_CUBLAS_OP_N, CCUDA_CUBLAS_OP_N, m, m, m, &alpha, pa, dataType, m, pb, dataType, m, &beta, pc,
              dataType, m, compute, CCUDA_CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx(\(name), \(n)^3)")
        }
        let flops = 2 * Double(n) * Double(n) * Double(n)
        matmuls.append(Matmul(precision: name + (compute == CCUDA_CUBLAS_COMPUTE_32F && name != "fp32" ? " (fp32 acc)" : ""), size: n, milliseconds: ms, teraflopsPerSecond: flops / ms / 1e9))
      } catch {
        errors.append("matrix product \(name): \(error)")
      }
    }
  }

  /// The mean time in milliseconds of `body`'s queued work over `repeats` runs, after one warm-up
  /// run, between two events on the context's stream.
  static func time(_ context: CUDAContext, repeats: Int, _ body: () throws -> Void) throws -> Double {
    let api = context.driver.api
    return try context.current {
      var start: ccuda_CUevent? = nil, end: ccuda_CUevent? = nil
      try api.check(api.cuEventCreate(&start, UInt32(CCUDA_EVENT_DEFAULT)), "cuEventCreate")
      defer { _ = api.cuEventDestroy(start) }
      try api.check(api.cuEventCreate(&end, UInt32(CCUDA_EVENT_DEFAULT)), "cuEventCreate")
      defer { _ = api.cuEventDestroy(end) }
      try body()
      try api.check(api.cuEventRecord(start, context.stream), "cuEventRecord")
      for _ in 0..<max(repeats, 1) { try body() }
      try api.check(api.cuEventRecord(end, context.stream), "cuEventRecord")
      try api.check(api.cuEventSynchronize(end), "cuEventSynchronize")
      var ms: Float = 0
      try api.check(api.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime")
      return Double(ms) / Double(max(repeats, 1))
    }
  }
}
