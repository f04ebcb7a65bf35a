import Foundation
import Testing

@testable import SegCUDA

// MARK: - Every kernel compiles with the real NVRTC

@Suite struct KernelCompileTests {
  /// Each family compiles to a CUBIN for sm_80 (A100) and sm_90 (H100), and the CUBIN defines every
  /// entry point Swift will launch.
  @Test(
    .enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)),
    arguments: KernelLibrary.families.map(\.name), [80, 90])
  func familyCompiles(_ family: String, _ architecture: Int) throws {
    let compiler = try #require(try CUDATestEnvironment.compiler())
    let f = try #require(KernelLibrary.families.first { $0.name == family })
    let module = try compiler.compile(f.source, name: "\(f.name).cu", architecture: architecture)
    #expect(!module.isPTX && module.image.count > 1000)
    #expect(Array(module.image.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], "a CUBIN is an ELF file")
    let missing = f.kernels.filter { !containsSymbol(module.image, $0) }
    #expect(missing.isEmpty, "\(family) for sm_\(architecture) lacks \(missing)")
    #expect(module.log.isEmpty, "NVRTC warned: \(module.log)")
  }

  @Test func kernelNamesAreUniqueAndIndexed() {
    let all = KernelLibrary.families.flatMap(\.kernels)
    #expect(Set(all).count == all.count)
    #expect(KernelLibrary.family(of: "add_f16")?.name == "elementwise")
    #expect(KernelLibrary.family(of: "cast_u8_bf16")?.name == "convert")
    #expect(KernelLibrary.family(of: "adam_bf16")?.name == "optimizer")
    #expect(KernelLibrary.family(of: "nope") == nil)
  }

  // MARK: - Errors and caching

  @Test(.enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)))
  func brokenKernelReportsNVRTCLog() throws {
    let compiler = try #require(try CUDATestEnvironment.compiler())
    let source = "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_thing; }\n"
    do {
      _ = try compiler.compile(source, name: "broken.cu", architecture: 90)
      Issue.record("a broken kernel compiled")
    } catch let e as CUDAError {
      #expect(e.kind == .compileFailed)
      #expect(e.message.contains("broken.cu"))
      #expect(e.message.contains("undefined_thing"), "the message carries NVRTC's log: \(e.message)")
      #expect(e.message.contains("sm_90"))
    }
  }

  @Test(.enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)))
  func cacheInMemoryAndOnDisk() throws {
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let source = "extern \"C\" __global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }\n"
    let first = try #require(try CUDATestEnvironment.compiler(cache: dir))
    let a = try first.compile(source, name: "twice.cu", architecture: 80)
    let b = try first.compile(source, name: "twice.cu", architecture: 80)
    #expect(!a.fromCache && b.fromCache && a.image == b.image)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".cubin") }
    #expect(files.count == 1 && files[0].hasPrefix("twice.cu-sm_80-"))

    // A new compiler (a new process, as far as the cache knows) reads the file.
    let second = try #require(try CUDATestEnvironment.compiler(cache: dir))
    let c = try second.compile(source, name: "twice.cu", architecture: 80)
    #expect(c.fromCache && c.image == a.image)
    // Another architecture or source is another entry.
    let d = try second.compile(source, name: "twice.cu", architecture: 90)
    #expect(!d.fromCache && d.image != a.image)

    // A damaged file is not trusted: the code is compiled again and the file rewritten.
    let path = dir.appendingPathComponent(files[0])
    try Data("garbage".utf8).write(to: path)
    let third = try #require(try CUDATestEnvironment.compiler(cache: dir))
    let e = try third.compile(source, name: "twice.cu", architecture: 80)
    #expect(!e.fromCache && e.image == a.image)
    let fourth = try #require(try CUDATestEnvironment.compiler(cache: dir))
    #expect(try fourth.compile(source, name: "twice.cu", architecture: 80).fromCache)
  }

  @Test(.enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)))
  func targetPicksCUBINOrPTX() throws {
    let compiler = try #require(try CUDATestEnvironment.compiler())
    #expect(compiler.supportedArchitectures.contains(80) && compiler.supportedArchitectures.contains(90))
    #expect(compiler.target(computeCapability: 9, 0)! == (90, false))
    #expect(compiler.target(computeCapability: 8, 0)! == (80, false))
    // A GPU newer than this NVRTC: PTX for the newest architecture it knows, JIT-compiled by the driver.
    let newest = compiler.supportedArchitectures.max()!
    #expect(compiler.target(computeCapability: 99, 9)! == (newest, true))
    #expect(compiler.target(computeCapability: 1, 0) == nil)
    let ptx = try compiler.compile(
      "extern \"C\" __global__ void k(float* x) { x[0] = 1.0f; }\n", name: "k.cu", architecture: 80, ptx: true)
    #expect(ptx.isPTX && ptx.image.last == 0)
    #expect(String(decoding: ptx.image.dropLast(), as: UTF8.self).contains(".target sm_80"))
  }
}
