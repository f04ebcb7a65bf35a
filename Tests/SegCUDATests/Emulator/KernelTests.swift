import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Direct kernel runs on the emulator

/// Runs one kernel on the emulator over host arrays: inputs are uploaded, `outputBytes` come back.
func runKernel(
  _ kernel: String, count: Int, inputs: [[UInt8]], outputBytes: Int, extra: [KernelArgument] = []
) throws -> [UInt8] {
  let emu = try HostEmulator.shared.get()
  let pointers = try inputs.map { bytes -> UInt64 in
    let p = try emu.allocate(bytes.count)
    try bytes.withUnsafeBytes { try emu.upload($0, to: p) }
    return p
  }
  let out = try emu.allocate(outputBytes)
  defer { (pointers + [out]).forEach { emu.free($0) } }
  try emu.launch(kernel, count: count, arguments: pointers.map { .pointer($0) } + [.pointer(out)] + extra)
  var result = [UInt8](repeating: 0, count: outputBytes)
  try result.withUnsafeMutableBytes { try emu.download(out, into: $0) }
  return result
}

func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
func values<T>(_ bytes: [UInt8], as _: T.Type) -> [T] {
  bytes.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
}

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct ConversionKernelTests {
  /// Every f16 bit pattern converts to f32 as Swift's Float(Float16) does.
  @Test func f16ToF32IsExactForEveryPattern() throws {
    let patterns = (0...UInt16.max).map { $0 }
    let out = values(
      try runKernel("cast_f16_f32", count: patterns.count, inputs: [bytes(patterns)], outputBytes: patterns.count * 4,
        extra: [.int64(Int64(patterns.count))]), as: UInt32.self)
    var mismatches: [String] = []
    for (i, h) in patterns.enumerated() {
      let expected = Float(Float16(bitPattern: h))
      let got = Float(bitPattern: out[i])
      if !(expected.isNaN ? got.isNaN : got.bitPattern == expected.bitPattern) {
        mismatches.append(String(format: "0x%04x: %@ vs %@", h, "\(got)", "\(expected)"))
      }
    }
    #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first \(mismatches.prefix(5))")
  }

  /// f32 to f16 rounds to nearest even as Float16(Float): normal, subnormal, tie, overflow cases
  /// and a sweep of random bit patterns.
  @Test func f32ToF16RoundsAsSwift() throws {
    var rng = SeededRandom(seed: 7)
    var floats: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e10, -1e10, .infinity, -.infinity, .nan,
      5.960464477539063e-08, 2.9802322387695312e-08, 2.98023259e-08, 8.940697e-08, 6.1035156e-05, 6.1035152e-05,
      1.00048828125, 1.0014648, 0.1, 3.14159]
    floats += (0..<20_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
    floats += (0..<20_000).map { _ in Float(Double.random(in: -70_000..<70_000, using: &rng)) }
    floats += (0..<20_000).map { _ in Float(Double.random(in: -1e-4..<1e-4, using: &rng)) }
    let out = values(
      try runKernel("cast_f32_f16", count: floats.count, inputs: [bytes(floats)], outputBytes: floats.count * 2,
        extra: [.int64(Int64(floats.count))]), as: UInt16.self)
    var mismatches: [String] = []
    for (i, f) in floats.enumerated() {
      let expected = Float16(f)
      let got = Float16(bitPattern: out[i])
      if !(expected.isNaN ? got.isNaN : got.bitPattern == expected.bitPattern) {
        mismatches.append("\(f) (0x\(String(f.bitPattern, radix: 16))): \(got) vs \(expected)")
      }
    }
    #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first \(mismatches.prefix(5))")
  }

  /// f32 to bf16 and back, bit for bit SegCore's BFloat16.
  @Test func bf16RoundTripsAsSegCore() throws {
    var rng = SeededRandom(seed: 8)
    let floats: [Float] = [0, -0, 1, .infinity, -.infinity, .nan, 3.0e38, -1.00390625, 1.01171875]
      + (0..<50_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
    let out = values(
      try runKernel("cast_f32_bf16", count: floats.count, inputs: [bytes(floats)], outputBytes: floats.count * 2,
        extra: [.int64(Int64(floats.count))]), as: UInt16.self)
    #expect(zip(floats, out).allSatisfy { $1 == BFloat16.fromFloat($0) })
    let back = values(
      try runKernel("cast_bf16_f32", count: out.count, inputs: [bytes(out)], outputBytes: out.count * 4,
        extra: [.int64(Int64(out.count))]), as: Float.self)
    #expect(zip(out, back).allSatisfy { BFloat16.toFloat($0).bitPattern == $1.bitPattern })
  }

  /// randomMask's kernel reproduces RandomMask.bits exactly, and so the reference's mask.
  @Test func randomMaskMatchesTheReferenceHash() throws {
    let n = 3000, seed: UInt64 = 0xDEAD_BEEF_1234, offset: UInt64 = UInt64.max - 1000, keep = 0.7
    let out = values(
      try runKernel("randomMask_f32", count: n, inputs: [], outputBytes: n * 4,
        extra: [.int64(Int64(n)), .uint64(seed), .uint64(offset), .double(keep * 16_777_216.0), .double(1 / keep)]),
      as: Float.self)
    let reference = try RandomMask(shape: [n], keepProbability: keep, seed: seed, offset: offset, dtype: .f32)
      .reference([], output: TensorType([n], .f32)).floats
    #expect(out == reference)
    #expect(out.filter { $0 == 0 }.count > 600 && out.filter { $0 == 0 }.count < 1200)
  }
}

// MARK: - Adam

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct AdamKernelTests {
  /// The fused update equals SegNN's Adam formula in f32, step by step, for f32, f16 and bf16 gradients.
  @Test(arguments: [DType.f32, .f16, .bf16])
  func fusedAdamMatchesTheFormula(_ gradientType: DType) throws {
    let emu = try HostEmulator.shared.get()
    let n = 300
    var rng = SeededRandom(seed: 21)
    var p = rng.doubles(n).map(Float.init), m = [Float](repeating: 0, count: n), v = m
    let (beta1, beta2, epsilon) = (0.9, 0.999, 1e-7)
    let buffers = try [p, m, v].map { a -> UInt64 in
      let ptr = try emu.allocate(n * 4)
      try a.withUnsafeBytes { try emu.upload($0, to: ptr) }
      return ptr
    }
    let g = try emu.allocate(n * gradientType.byteSize)
    defer { (buffers + [g]).forEach { emu.free($0) } }
    for step in 1...3 {
      // Gradients as the dtype holds them; the formula sees the same rounded values.
      let grads = HostTensor(type: TensorType([n], gradientType), doubles: rng.doubles(n))
      switch grads.data {
      case .f32(let a): try a.withUnsafeBytes { try emu.upload($0, to: g) }
      case .f16(let a): try a.withUnsafeBytes { try emu.upload($0, to: g) }
      case .bf16(let a): try a.withUnsafeBytes { try emu.upload($0, to: g) }
      default: Issue.record("unexpected dtype")
      }
      let t = Double(step)
      let stepSize = 1e-3 * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
      try emu.launch(
        "adam_\(gradientType.rawValue)", count: n,
        // In place: the outputs alias the inputs, which the kernel allows.
        arguments: buffers.map { .pointer($0) } + [.pointer(g)] + buffers.map { .pointer($0) } + [
          .int64(Int64(n)), .float(Float(beta1)), .float(Float(beta2)), .float(Float(1 - beta1)),
          .float(Float(1 - beta2)), .float(Float(epsilon)), .float(Float(stepSize)),
        ])
      let gf = grads.floats
      for i in 0..<n {
        m[i] = m[i] * Float(beta1) + gf[i] * Float(1 - beta1)
        v[i] = v[i] * Float(beta2) + gf[i] * gf[i] * Float(1 - beta2)
        p[i] = p[i] - m[i] / (v[i].squareRoot() + Float(epsilon)) * Float(stepSize)
      }
    }
    var got = [[Float]](repeating: [Float](repeating: 0, count: n), count: 3)
    for k in 0..<3 { try got[k].withUnsafeMutableBytes { try emu.download(buffers[k], into: $0) } }
    #expect(got[0] == p && got[1] == m && got[2] == v)
  }
}

// MARK: - Convolution epilogue

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct BiasActivationKernelTests {
  /// y = relu(y + bias[channel]) in place, and y + bias without the ReLU, as the add and relu ops
  /// compute them one after the other.
  @Test(arguments: [true, false])
  func epilogueEqualsAddThenReLU(_ relu: Bool) throws {
    let emu = try HostEmulator.shared.get()
    let (rows, channels) = (37, 5)
    var rng = SeededRandom(seed: 4)
    let y = rng.doubles(rows * channels).map(Float.init), bias = rng.doubles(channels).map(Float.init)
    let (py, pb) = (try emu.allocate(y.count * 4), try emu.allocate(channels * 4))
    defer { [py, pb].forEach { emu.free($0) } }
    try y.withUnsafeBytes { try emu.upload($0, to: py) }
    try bias.withUnsafeBytes { try emu.upload($0, to: pb) }
    try emu.launch(
      "biasActivation_f32", count: y.count,
      arguments: [.pointer(py), .pointer(pb), .int64(Int64(y.count)), .int64(Int64(channels)), .int32(relu ? 1 : 0)])
    var got = [Float](repeating: .nan, count: y.count)
    try got.withUnsafeMutableBytes { try emu.download(py, into: $0) }
    let expected = y.indices.map { i -> Float in
      let v = y[i] + bias[i % channels]
      return relu ? max(v, 0) : v
    }
    #expect(got == expected)
  }
}
