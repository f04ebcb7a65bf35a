import Foundation
import SegCore
import Testing

@testable import SegCUDA

// MARK: - What the hot kernels compile to

/// The glue kernels compiled by the real NVRTC to PTX for sm_90 (the H100/H200 class), read as
/// text: the memory-bound kernels move 16-byte vectors (ld.global.v4 / ld.global.nc.v4, v2 of
/// 64-bit lanes for f64), f16 and bf16 convert with the hardware's
/// `cvt`, and no kernel divides in 64 bits (a long software routine on a GPU).
@Suite(.enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)))
struct KernelPTXTests {
  /// The PTX of each family, compiled once for the suite.
  static let ptx: Result<[String: String], Error> = Result {
    let compiler = try #require(try CUDATestEnvironment.compiler())
    var result: [String: String] = [:]
    for f in KernelLibrary.families {
      let module = try compiler.compile(f.source, name: "\(f.name).cu", architecture: 90, ptx: true)
      result[f.name] = String(decoding: module.image.prefix { $0 != 0 }, as: UTF8.self)
    }
    return result
  }

  /// The kernels that stream whole tensors: they must load and store 16 bytes per access.
  static let vectorised: [String] = {
    let elementwise = KernelNames.floats.flatMap { d in
      (ElementwiseKernels.binary.map(\.0.rawValue) + ElementwiseKernels.unary.map(\.0.rawValue) + ["biasActivation"])
        .map { KernelNames.name($0, d) }
    }
    let casts = KernelNames.all.flatMap { s in KernelNames.all.filter { $0 != s }.map { "cast_\(s.rawValue)_\($0.rawValue)" } }
    let copies = KernelNames.byteSizes.flatMap { ["copy_b\($0)", "pad_b\($0)", "cropConcat_b\($0)", "cropConcatBackward_b\($0)"] }
    let adam = OptimizerKernels.gradientTypes.map { KernelNames.name("adam", $0) }
    let skipGradients = KernelNames.floats.map { KernelNames.name(OpKind.skipGradient.rawValue, $0) }
    return elementwise + casts + copies + adam + skipGradients
  }()

  @Test func vectorisedKernelsUse128BitLoadsAndStores() throws {
    let ptx = try Self.ptx.get()
    var missing: [String] = []
    for kernel in Self.vectorised {
      let body = try #require(entry(kernel, in: ptx), "\(kernel) is not in the PTX")
      if !moves128Bits(body, "ld.global") || !moves128Bits(body, "st.global") { missing.append(kernel) }
    }
    #expect(missing.isEmpty, "no 128-bit global load or store in \(missing)")
  }

  /// Every kernel that reads or writes f16 converts with cvt.f32.f16 / cvt.rn.f16.f32, and bf16
  /// rounds with cvt.rn.bf16.f32, not in integer code.
  @Test func halfConversionsUseCvt() throws {
    let ptx = try Self.ptx.get()
    let pairs: [(String, [String])] = [
      ("add_f16", ["cvt.f32.f16", "cvt.rn.f16.f32"]), ("relu_f16", ["cvt.f32.f16", "cvt.rn.f16.f32"]),
      ("reluBackward_f16", ["cvt.f32.f16", "cvt.rn.f16.f32"]), ("biasActivation_f16", ["cvt.f32.f16", "cvt.rn.f16.f32"]),
      ("cast_f32_f16", ["cvt.rn.f16.f32"]), ("cast_f16_f32", ["cvt.f32.f16"]), ("adam_f16", ["cvt.f32.f16"]),
      ("sumFinish_f16", ["cvt.rn.f16.f32"]), ("softmax_f16", ["cvt.f32.f16", "cvt.rn.f16.f32"]),
      ("add_bf16", ["cvt.rn.bf16.f32"]), ("cast_f32_bf16", ["cvt.rn.bf16.f32"]),
      ("biasActivation_bf16", ["cvt.rn.bf16.f32"]), ("skipGradient_f16", ["cvt.f32.f16", "cvt.rn.f16.f32"]),
      ("skipGradient_bf16", ["cvt.rn.bf16.f32"]),
    ]
    for (kernel, instructions) in pairs {
      let body = try #require(entry(kernel, in: ptx), "\(kernel) is not in the PTX")
      for i in instructions { #expect(body.contains(i), "\(kernel) has no \(i)") }
      // The integer rounding's overflow bound (0x477ff000 = 1199566848, compared as is or less 1) is gone.
      #expect(!body.contains("119956684"), "\(kernel) still rounds f16 in integer code")
    }
  }

  /// No kernel of any family (the hot ones: elementwise, copy, pad, padBackward, sum, softmax,
  /// cast, pooling, Adam; and the rest) divides in 64 bits.
  @Test func noKernelDividesIn64Bits() throws {
    let ptx = try Self.ptx.get()
    for (family, text) in ptx {
      let found = ["div.s64", "div.u64", "rem.s64", "rem.u64"].filter { text.contains($0) }
      #expect(found.isEmpty, "\(family) uses \(found)")
      let kernels = try #require(KernelLibrary.families.first { $0.name == family }).kernels
      let dividing = kernels.filter { k in entry(k, in: ptx).map { b in found.contains { b.contains($0) } } ?? false }
      #expect(dividing.isEmpty, "64-bit division in \(dividing)")
    }
  }

  /// The strided index kernels read their per-axis parameters at fixed offsets, the sum's and
  /// padBackward's odometers and the skip gradient's per-channel maxima live in registers: no
  /// per-thread copy to local memory.
  @Test func indexKernelsUseNoLocalMemory() throws {
    let ptx = try Self.ptx.get()
    let kernels = [
      "add_f16", "mul_f32", "reluBackward_bf16", "copy_b2", "copy_b4", "pad_b2", "pad_b4", "sumPartial_f16",
      "sumPartial_f32", "softmaxBlock_f16", "padBackward_f16", "padBackward_f32", "skipGradient_f16", "skipGradient_f32",
    ]
    for k in kernels {
      let body = try #require(entry(k, in: ptx), "\(k) is not in the PTX")
      #expect(!body.contains("st.local"), "\(k) copies its parameters to local memory")
    }
  }

  /// Whether `body` has a 128-bit `access` (ld.global or st.global): four 32-bit lanes (v4, as
  /// f16, bf16 and f32 vectors compile) or two 64-bit ones (v2, as f64 vectors do); ld.global.nc
  /// (the read-only path) counts as a load.
  private func moves128Bits(_ body: String, _ access: String) -> Bool {
    let prefixes = access == "ld.global" ? ["ld.global.", "ld.global.nc."] : ["st.global."]
    let vectors = ["v4.b32", "v4.u32", "v4.f32", "v4.s32", "v2.b64", "v2.u64", "v2.f64", "v2.s64"]
    return prefixes.contains { p in vectors.contains { body.contains(p + $0) } }
  }

  /// The text of `.entry kernel(...) { ... }` in whichever family defines it.
  private func entry(_ kernel: String, in ptx: [String: String]) -> String? {
    guard let family = KernelLibrary.family(of: kernel), let text = ptx[family.name],
      let start = text.range(of: ".entry \(kernel)(")
    else { return nil }
    let rest = text[start.lowerBound...]
    let end = rest.range(of: "\n}\n")?.upperBound ?? rest.endIndex
    return String(rest[..<end])
  }
}
