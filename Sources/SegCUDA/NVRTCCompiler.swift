import CCUDA
import Foundation

// MARK: - Compiled code

/// Code for one GPU architecture: a CUBIN (machine code for sm_XY) or, for a GPU newer than this
/// NVRTC knows, PTX that the driver compiles when it loads the module.
public struct CompiledModule: Sendable {
  /// The bytes to hand to cuModuleLoadData (PTX ends with a NUL byte).
  public let image: [UInt8]
  /// True for PTX, false for CUBIN.
  public let isPTX: Bool
  /// NVRTC's log (warnings), empty when silent.
  public let log: String
  /// Whether it came from the in-memory or on-disk cache.
  public let fromCache: Bool
}

// MARK: - Compiler

/// Compiles CUDA C++ source with NVRTC for one architecture, caching the result in memory and on
/// disk (keyed by source, architecture, options and NVRTC version; the full key is stored beside
/// the code and compared on load, so a hash collision can only cost a recompilation).
public final class NVRTCCompiler: @unchecked Sendable {
  public let api: NVRTCAPI
  /// NVRTC's version, part of every cache key.
  public let version: (major: Int, minor: Int)
  /// The architectures NVRTC can emit CUBIN for, e.g. [75, 80, 86, 89, 90, 100, 120].
  public let supportedArchitectures: [Int]
  /// Where compiled code is kept between runs (nil: memory only).
  public let cacheDirectory: URL?
  /// Options added to every compilation.
  public static let baseOptions = ["--std=c++17"]

  private var memory: [String: CompiledModule] = [:]
  private let lock = NSLock()

  /// A compiler that keeps compiled code in `cacheDirectory` (nil: in memory only).
  public init(api: NVRTCAPI, cacheDirectory: URL?) throws {
    self.api = api
    self.version = try api.version()
    self.supportedArchitectures = try api.supportedArchitectures()
    self.cacheDirectory = cacheDirectory
  }

  /// A compiler with the cache folder `options` names (UNET_CUBIN_CACHE and its defaults).
  public convenience init(api: NVRTCAPI, options: CUDAOptions) throws {
    try self.init(api: api, cacheDirectory: options.kernelCacheDirectory)
  }

  /// The compilation target for a device of compute capability `major`.`minor`: a CUBIN for sm_XY
  /// when NVRTC supports it; else PTX for the newest virtual architecture not above the device,
  /// which the driver compiles when it loads the module. Nil when the device is older than every
  /// architecture NVRTC knows.
  public func target(computeCapability major: Int, _ minor: Int) -> (architecture: Int, ptx: Bool)? {
    let arch = major * 10 + minor
    if supportedArchitectures.contains(arch) { return (arch, false) }
    guard let best = supportedArchitectures.filter({ $0 <= arch }).max() else { return nil }
    return (best, true)
  }

  // MARK: - Compiling

  /// Compiles `source` (named `name` in messages) for sm_`architecture` (compute_ when `ptx`);
  /// a compile error carries NVRTC's log.
  public func compile(
    _ source: String, name: String, architecture: Int, ptx: Bool = false, options: [String] = []
  ) throws -> CompiledModule {
    let archOption = "--gpu-architecture=\(ptx ? "compute" : "sm")_\(architecture)"
    let allOptions = NVRTCCompiler.baseOptions + [archOption] + options
    let key = "nvrtc \(version.major).\(version.minor)\n\(allOptions.joined(separator: " "))\n\(source)"
    let file = "\(name)-\(ptx ? "compute" : "sm")_\(architecture)-\(Self.hash(key)).\(ptx ? "ptx" : "cubin")"
    lock.lock()
    defer { lock.unlock() }
    if let m = memory[key] { return CompiledModule(image: m.image, isPTX: ptx, log: m.log, fromCache: true) }
    if let image = readCache(file, key: key) {
      let m = CompiledModule(image: image, isPTX: ptx, log: "", fromCache: true)
      memory[key] = m
      return m
    }
    let m = try run(source, name: name, options: allOptions, ptx: ptx)
    memory[key] = m
    writeCache(file, key: key, image: m.image)
    return m
  }

  /// One NVRTC compilation.
  private func run(_ source: String, name: String, options: [String], ptx: Bool) throws -> CompiledModule {
    var program: ccuda_nvrtcProgram? = nil
    try api.check(api.nvrtcCreateProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram(\(name))")
    defer { _ = api.nvrtcDestroyProgram(&program) }
    let cOptions = options.map { strdup($0) }
    defer { cOptions.forEach { free($0) } }
    let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer {
      api.nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress)
    }
    let log = programLog(program)
    if status == CCUDA_NVRTC_ERROR_COMPILATION {
      throw CUDAError(
        .compileFailed,
        "NVRTC could not compile \(name) (\(options.joined(separator: " "))):\n\(log)")
    }
    try api.check(status, "nvrtcCompileProgram(\(name))")
    var size = 0
    var image: [UInt8]
    if ptx {
      try api.check(api.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize(\(name))")
      image = [UInt8](repeating: 0, count: size)
      try image.withUnsafeMutableBufferPointer { b in
        try b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: size) {
          try api.check(api.nvrtcGetPTX(program, $0), "nvrtcGetPTX(\(name))")
        }
      }
    } else {
      try api.check(api.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(name))")
      image = [UInt8](repeating: 0, count: size)
      try image.withUnsafeMutableBufferPointer { b in
        try b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: size) {
          try api.check(api.nvrtcGetCUBIN(program, $0), "nvrtcGetCUBIN(\(name))")
        }
      }
    }
    return CompiledModule(image: image, isPTX: ptx, log: log, fromCache: false)
  }

  /// The program's log, trimmed.
  private func programLog(_ program: ccuda_nvrtcProgram?) -> String {
    var size = 0
    guard api.nvrtcGetProgramLogSize(program, &size) == CCUDA_NVRTC_SUCCESS, size > 1 else { return "" }
    var buffer = [CChar](repeating: 0, count: size)
    guard api.nvrtcGetProgramLog(program, &buffer) == CCUDA_NVRTC_SUCCESS else { return "" }
    return String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  // MARK: - Disk cache

  /// A cache file: a magic line, the key's length and bytes, then the code.
  private static let magic = Array("unetseg-nvrtc-cache 1\n".utf8)

  private func readCache(_ file: String, key: String) -> [UInt8]? {
    guard let dir = cacheDirectory,
      let data = FileManager.default.contents(atPath: dir.appendingPathComponent(file).path)
    else { return nil }
    let bytes = [UInt8](data)
    let keyBytes = Array(key.utf8)
    let header = Self.magic + Self.lengthBytes(keyBytes.count) + keyBytes
    guard bytes.count > header.count, bytes[..<header.count].elementsEqual(header) else { return nil }
    return Array(bytes[header.count...])
  }

  /// Writes to a temporary file and renames it, so that a reader never sees half a file; a cache
  /// that cannot be written is skipped silently (it only costs a compilation next time).
  private func writeCache(_ file: String, key: String, image: [UInt8]) {
    guard let dir = cacheDirectory else { return }
    let keyBytes = Array(key.utf8)
    let data = Data(Self.magic + Self.lengthBytes(keyBytes.count) + keyBytes + image)
    do {
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      let tmp = dir.appendingPathComponent(".\(file).\(getpid()).tmp")
      try data.write(to: tmp)
      if rename(tmp.path, dir.appendingPathComponent(file).path) != 0 { try? FileManager.default.removeItem(at: tmp) }
    } catch {}
  }

  private static func lengthBytes(_ n: Int) -> [UInt8] { Array(String(n).utf8) + [10] }

  /// 64-bit FNV-1a of the key, in hex (a file name, not a security measure).
  static func hash(_ key: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in key.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return String(h, radix: 16)
  }
}
