import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Buffers at chosen alignments

/// Host arrays placed on the emulator `shift` bytes past a 256-byte boundary (0: aligned as the
/// allocator gives them; an element size: misaligned for 16-byte vectors), freed together.
final class ShiftedBuffers {
  private let emu: HostEmulator
  private var allocations: [UInt64] = []

  init(_ emu: HostEmulator) { self.emu = emu }
  deinit { allocations.forEach { emu.free($0) } }

  /// `bytes` uploaded at an address `shift` bytes past an allocation.
  func put(_ bytes: [UInt8], shift: Int = 0) throws -> UInt64 {
    let p = try emu.allocate(bytes.count + 16)
    allocations.append(p)
    try bytes.withUnsafeBytes { try emu.upload($0, to: p + UInt64(shift)) }
    return p + UInt64(shift)
  }

  /// `count` elements of T read back from `pointer`.
  func get<T>(_ pointer: UInt64, _ count: Int, as _: T.Type) throws -> [T] {
    var out = [UInt8](repeating: 0, count: count * MemoryLayout<T>.stride)
    try out.withUnsafeMutableBytes { try emu.download(pointer, into: $0) }
    return values(out, as: T.self)
  }
}

/// n values in [-2, 2) (some negative, for ReLU), rounded to Float16.
private func halves(_ n: Int, seed: UInt64) -> [Float16] {
  var rng = SeededRandom(seed: seed)
  return rng.doubles(n).map { Float16(Float($0) * 4 - 2) }
}

// MARK: - Tests

/// The vectorised paths (16 bytes per access) and their scalar tails and fallbacks give what one
/// element per thread gives: lengths that are not a multiple of the vector, misaligned buffers,
/// broadcast rows on either side, copies of whole and partial vectors.
@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct VectorKernelTests {
  /// Same-shape binary ops over n = 8k + 5 halves, aligned (vectors and a tail) and shifted by one
  /// element (the scalar fallback), and an f32 kernel on the same lengths.
  @Test(arguments: [0, 2])
  func sameShapeBinaryWithTail(_ shift: Int) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let n = 8 * 13 + 5
    let (a, b) = (halves(n, seed: 1), halves(n, seed: 2))
    let (pa, pb) = (try buffers.put(bytes(a), shift: shift), try buffers.put(bytes(b), shift: shift))
    let args: [KernelArgument] = [.int64(Int64(n)), .dims([n]), .vec([1]), .vec([1])]
    for (kernel, f) in [("mul_f16", { (x: Float, y: Float) in x * y }), ("reluBackward_f16", { $1 > 0 ? $0 : 0 })] {
      let out = try buffers.put([UInt8](repeating: 0xA5, count: 2 * n), shift: shift)
      try emu.launch(kernel, count: vectorItems(n, .f16), arguments: [.pointer(pa), .pointer(pb), .pointer(out)] + args)
      let expected = zip(a, b).map { Float16(f(Float($0), Float($1))).bitPattern }
      #expect(try buffers.get(out, n, as: UInt16.self) == expected, "\(kernel), shifted \(shift) bytes")
    }
    let (fa, fb) = (a.map(Float.init), b.map(Float.init))
    let (qa, qb) = (try buffers.put(bytes(fa), shift: 2 * shift), try buffers.put(bytes(fb), shift: 2 * shift))
    let out = try buffers.put([UInt8](repeating: 0xA5, count: 4 * n), shift: 2 * shift)
    try emu.launch("div_f32", count: vectorItems(n, .f32), arguments: [.pointer(qa), .pointer(qb), .pointer(out)] + args)
    #expect(try buffers.get(out, n, as: Float.self) == zip(fa, fb).map { $0 / $1 })
  }

  /// [rows, channels] with a [channels] row on either side (stride 0 along rows): the row path
  /// when channels are a multiple of the vector, the strided path when not.
  @Test(arguments: [16, 12, 6])
  func rowBroadcastOnEitherSide(_ channels: Int) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let rows = 11, n = rows * channels
    let full = halves(n, seed: 3), row = halves(channels, seed: 4)
    let (pf, pr) = (try buffers.put(bytes(full)), try buffers.put(bytes(row)))
    for fullFirst in [true, false] {
      let out = try buffers.put([UInt8](repeating: 0xA5, count: 2 * n))
      let (sf, sr): ([Int], [Int]) = ([channels, 1], [0, 1])
      try emu.launch(
        "sub_f16", count: vectorItems(n, .f16),
        arguments: (fullFirst ? [pf, pr] : [pr, pf]).map { .pointer($0) } + [
          .pointer(out), .int64(Int64(n)), .dims([rows, channels]), .vec(fullFirst ? sf : sr), .vec(fullFirst ? sr : sf),
        ])
      let expected = (0..<n).map { i -> UInt16 in
        let (x, y) = (Float(full[i]), Float(row[i % channels]))
        return Float16(fullFirst ? x - y : y - x).bitPattern
      }
      #expect(try buffers.get(out, n, as: UInt16.self) == expected, "channels \(channels), full first \(fullFirst)")
    }
  }

  /// Unary and cast kernels with tails, aligned and shifted; casts both ways between f32 and the
  /// half types, and from u8 (16 elements per work item) to f64.
  @Test(arguments: [0, 1])
  func unaryAndCastWithTail(_ shiftElements: Int) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let n = 16 * 5 + 13
    let h = halves(n, seed: 5)
    let ph = try buffers.put(bytes(h), shift: 2 * shiftElements)
    let relu = try buffers.put([UInt8](repeating: 0xA5, count: 2 * n), shift: 2 * shiftElements)
    try emu.launch(
      "relu_f16", count: vectorItems(n, .f16), arguments: [.pointer(ph), .pointer(relu), .int64(Int64(n)), .double(0)])
    #expect(try buffers.get(relu, n, as: UInt16.self) == h.map { Float16(max(Float($0), 0)).bitPattern })

    let wide = try buffers.put([UInt8](repeating: 0xA5, count: 4 * n), shift: 4 * shiftElements)
    try emu.launch("cast_f16_f32", count: (n + 7) / 8, arguments: [.pointer(ph), .pointer(wide), .int64(Int64(n))])
    let floats = try buffers.get(wide, n, as: Float.self)
    #expect(floats == h.map(Float.init))
    let narrow = try buffers.put([UInt8](repeating: 0xA5, count: 2 * n), shift: 2 * shiftElements)
    try emu.launch("cast_f32_bf16", count: (n + 7) / 8, arguments: [.pointer(wide), .pointer(narrow), .int64(Int64(n))])
    #expect(try buffers.get(narrow, n, as: UInt16.self) == floats.map { BFloat16.fromFloat($0) })

    let labels = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37) }
    let pl = try buffers.put(labels, shift: shiftElements)
    let doubles = try buffers.put([UInt8](repeating: 0xA5, count: 8 * n), shift: 8 * shiftElements)
    try emu.launch("cast_u8_f64", count: (n + 15) / 16, arguments: [.pointer(pl), .pointer(doubles), .int64(Int64(n))])
    #expect(try buffers.get(doubles, n, as: Double.self) == labels.map(Double.init))
  }

  /// A concat-like copy of [rows, 16] halves into [rows, 24] at channel `base`: 16-byte vectors
  /// when the base is a whole vector (8), element by element when not (3).
  @Test(arguments: [8, 3])
  func copyIntoChannelBlock(_ base: Int) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let rows = 9, width = 16, outWidth = 24
    let src = (0..<rows * width).map { UInt16($0 + 1) }
    let dst = [UInt16](repeating: 0, count: rows * outWidth)
    let (ps, pd) = (try buffers.put(bytes(src)), try buffers.put(bytes(dst)))
    try emu.launch(
      "copy_b2", count: base % 8 == 0 ? rows * width / 8 : rows * width,
      arguments: [
        .pointer(ps), .pointer(pd), .int64(Int64(rows * width)), .dims([rows, width]), .vec([width, 1]), .int64(0),
        .vec([outWidth, 1]), .int64(Int64(base)),
      ])
    var expected = dst
    for r in 0..<rows { for c in 0..<width { expected[r * outWidth + base + c] = src[r * width + c] } }
    #expect(try buffers.get(pd, rows * outWidth, as: UInt16.self) == expected)
  }

  /// Reflect and zero padding of [2, 5, 6, channels] halves along H and W: 16-byte vectors when
  /// the channels are a multiple of 8, element by element when not.
  @Test(arguments: [16, 5])
  func padAlongHeightAndWidth(_ channels: Int) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let dims = [2, 5, 6, channels], before = [0, 2, 1, 0], after = [0, 1, 3, 0]
    let outDims = (0..<4).map { dims[$0] + before[$0] + after[$0] }
    let n = outDims.reduce(1, *), strides = [dims[1] * dims[2] * channels, dims[2] * channels, channels, 1]
    let src = (0..<dims.reduce(1, *)).map { UInt16($0 + 1) }
    let ps = try buffers.put(bytes(src))
    for reflect in [true, false] {
      let pd = try buffers.put([UInt8](repeating: 0xA5, count: 2 * n))
      try emu.launch(
        "pad_b2", count: channels % 8 == 0 ? n / 8 : n,
        arguments: [
          .pointer(ps), .pointer(pd), .int64(Int64(n)), .dims(outDims), .vec(before), .vec(dims), .vec(strides),
          .int64(reflect ? 1 : 0),
        ])
      var expected: [UInt16] = []
      for b in 0..<outDims[0] {
        for y in 0..<outDims[1] {
          for x in 0..<outDims[2] {
            for c in 0..<channels {
              var (sy, sx) = (y - before[1], x - before[2])
              let outside = sy < 0 || sy >= dims[1] || sx < 0 || sx >= dims[2]
              if reflect {
                sy = sy < 0 ? -sy : sy >= dims[1] ? 2 * (dims[1] - 1) - sy : sy
                sx = sx < 0 ? -sx : sx >= dims[2] ? 2 * (dims[2] - 1) - sx : sx
              }
              expected.append(!reflect && outside ? 0 : src[b * strides[0] + sy * strides[1] + sx * strides[2] + c])
            }
          }
        }
      }
      #expect(try buffers.get(pd, n, as: UInt16.self) == expected, "channels \(channels), reflect \(reflect)")
    }
  }

  /// The skip connection's shapes of the crop-and-concat tests: batch, the first operand's height
  /// and width, the skip's height and width, and the window's top-left corner in the skip.
  static let skipWindow = (batch: 2, h: 4, w: 5, hs: 7, ws: 9, oy: 1, ox: 2)

  /// The kernels' shape argument for `ca` + `cs` channels.
  static func windowArgument(_ ca: Int, _ cs: Int) -> [Int] {
    let s = skipWindow
    return [s.batch, s.h, s.w, ca, cs, s.hs, s.ws, s.oy, s.ox]
  }

  /// Threads for `elements` half elements: one per 8-half vector when both channel counts are whole vectors.
  static func threads(_ elements: Int, _ ca: Int, _ cs: Int) -> Int { ca % 8 == 0 && cs % 8 == 0 ? elements / 8 : elements }

  /// The fused crop and concat: a [2, 4, 5, ca] tensor beside the window at (1, 2) of a [2, 7, 9,
  /// cs] skip, in 16-byte vectors (channels multiples of 8 halves), element by element (not), and
  /// with a misaligned buffer (elements, whatever the channels).
  @Test(arguments: [(16, 8, 0), (5, 3, 0), (16, 8, 2)])
  func cropConcatMatchesSliceThenConcat(_ channels: (Int, Int, Int)) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let (ca, cs, shift) = channels
    let (batch, h, w, hs, ws, oy, ox) = Self.skipWindow
    let a = (0..<batch * h * w * ca).map { UInt16($0 + 1) }, skip = (0..<batch * hs * ws * cs).map { UInt16(40_000 + $0) }
    let (pa, ps) = (try buffers.put(bytes(a), shift: shift), try buffers.put(bytes(skip)))
    let n = batch * h * w * (ca + cs)
    let out = try buffers.put([UInt8](repeating: 0xA5, count: 2 * n))
    try emu.launch(
      "cropConcat_b2", count: Self.threads(n, ca, cs),
      arguments: [.pointer(pa), .pointer(ps), .pointer(out), .int64(Int64(n)), .int64s(Self.windowArgument(ca, cs))])
    var expected: [UInt16] = []
    for n in 0..<batch {
      for y in 0..<h {
        for x in 0..<w {
          expected += (0..<ca).map { a[((n * h + y) * w + x) * ca + $0] }
          expected += (0..<cs).map { skip[((n * hs + y + oy) * ws + x + ox) * cs + $0] }
        }
      }
    }
    #expect(try buffers.get(out, n, as: UInt16.self) == expected, "channels \(ca) + \(cs), shift \(shift)")
  }

  /// Its gradient in one launch: g [2, 4, 5, ca + cs] split into ga [2, 4, 5, ca] and gs [2, 7, 9,
  /// cs], zero outside the window at (1, 2); every element of both written (the buffers start as
  /// 0xA5 bytes), in vectors, element by element and misaligned.
  @Test(arguments: [(16, 8, 0), (5, 3, 0), (8, 16, 2)])
  func cropConcatBackwardMatchesSliceThenPad(_ channels: (Int, Int, Int)) throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let (ca, cs, shift) = channels
    let (batch, h, w, hs, ws, oy, ox) = Self.skipWindow
    let c = ca + cs
    let g = (0..<batch * h * w * c).map { UInt16($0 + 1) }
    let pg = try buffers.put(bytes(g))
    let (na, ns) = (batch * h * w * ca, batch * hs * ws * cs)
    let (pa, ps) = (try buffers.put([UInt8](repeating: 0xA5, count: 2 * na)), try buffers.put([UInt8](repeating: 0xA5, count: 2 * ns), shift: shift))
    try emu.launch(
      "cropConcatBackward_b2", count: Self.threads(na + ns, ca, cs),
      arguments: [.pointer(pg), .pointer(pa), .pointer(ps), .int64(Int64(na + ns)), .int64s(Self.windowArgument(ca, cs))])
    let expectedA = (0..<batch * h * w).flatMap { p in (0..<ca).map { g[p * c + $0] } }
    var expectedS: [UInt16] = []
    for n in 0..<batch {
      for y in 0..<hs {
        for x in 0..<ws {
          let (iy, ix) = (y - oy, x - ox)
          let inside = (0..<h).contains(iy) && (0..<w).contains(ix)
          expectedS += (0..<cs).map { inside ? g[((n * h + iy) * w + ix) * c + ca + $0] : 0 }
        }
      }
    }
    #expect(try buffers.get(pa, na, as: UInt16.self) == expectedA, "channels \(ca) + \(cs), shift \(shift)")
    #expect(try buffers.get(ps, ns, as: UInt16.self) == expectedS, "channels \(ca) + \(cs), shift \(shift)")
  }

  /// The convolution epilogue with channels a multiple of the vector (the vector path), in f16.
  @Test func biasActivationVectorPath() throws {
    let emu = try HostEmulator.shared.get()
    let buffers = ShiftedBuffers(emu)
    let rows = 7, channels = 24, n = rows * channels
    let y = halves(n, seed: 6), bias = halves(channels, seed: 7)
    let (py, pb) = (try buffers.put(bytes(y)), try buffers.put(bytes(bias)))
    try emu.launch(
      "biasActivation_f16", count: vectorItems(n, .f16),
      arguments: [.pointer(py), .pointer(pb), .int64(Int64(n)), .int64(Int64(channels)), .int32(1)])
    let expected = (0..<n).map { Float16(max(Float(y[$0]) + Float(bias[$0 % channels]), 0)).bitPattern }
    #expect(try buffers.get(py, n, as: UInt16.self) == expected)
  }

  /// The index helper's division beyond 2^32 (shift and subtract, so that no kernel carries a
  /// 64-bit division) gives the quotient and remainder of C++'s 64-bit `/` and `%`: the prelude
  /// compiled with the host compiler into a small program that compares them on edge and random
  /// cases (no tensor of 4G elements fits a test).
  @Test func wideDivisionMatches64BitDivision() throws {
    let cxx = try #require(HostEmulator.compiler)
    let dir = try temporaryFolder("segcuda-udiv")
    defer { try? FileManager.default.removeItem(at: dir) }
    let program = "#include \"emu.h\"\n#include <stdio.h>\n" + KernelPrelude.source + #"""
      int main() {
        u64 s = 0x9E3779B97F4A7C15ull, bad = 0;
        const u64 edges[] = {0, 1, 2, 3, 4294967295ull, 4294967296ull, 4294967297ull, 0x7fffffffffffffffull};
        for (int i = 0; i < 200000; ++i) {
          s ^= s << 13; s ^= s >> 7; s ^= s << 17;
          u64 x = i < 64 ? edges[i % 8] : s >> (s & 31), d = i < 64 ? edges[i / 8] : (s >> (s % 61)) | 1;
          x &= 0x7fffffffffffffffull;
          if (d == 0) d = 1;
          u64 r, q = udiv(x, d, r);
          if (q != x / d || r != x % d) { if (bad++ < 5) printf("%llu / %llu: %llu r %llu\n", x, d, q, r); }
        }
        return bad != 0;
      }
      """#
    try EmulatorSource.header.write(to: dir.appendingPathComponent("emu.h"), atomically: true, encoding: .utf8)
    try program.write(to: dir.appendingPathComponent("udiv.cpp"), atomically: true, encoding: .utf8)
    for arguments in [["-std=c++17", "-O1", "-w", "udiv.cpp", "-o", "udiv"], []] {
      let p = Process()
      p.executableURL = arguments.isEmpty ? dir.appendingPathComponent("udiv") : URL(fileURLWithPath: cxx)
      p.arguments = arguments
      p.currentDirectoryURL = dir
      let pipe = Pipe()
      p.standardOutput = pipe
      p.standardError = pipe
      try p.run()
      let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      p.waitUntilExit()
      #expect(p.terminationStatus == 0, "\(arguments.isEmpty ? "udiv" : "compiling"): \(output.prefix(2000))")
      if p.terminationStatus != 0 { return }
    }
  }
}
