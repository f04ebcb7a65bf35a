import CWinograd
import Foundation
import SegCore

// MARK: - Problem

/// One 3x3 stride-1 cross-correlation in Winograd's terms: input x (N, C, H, W) and output
/// y (N, O, OH, OW), both in nChw16c (channels padded to 16); output pixel (i, j) reads input rows
/// i - padTop ... i - padTop + 2 and columns j - padLeft ... j - padLeft + 2, zero outside (a
/// negative pad starts inside the input). Backward-data is the same with the roles swapped.
struct WinogradProblem {
  let n, c, h, w, o, oh, ow: Int
  let padTop, padLeft: Int

  /// Channels rounded up to the 16-lane block.
  var cBlocks: Int { (c + 15) / 16 }
  var oBlocks: Int { (o + 15) / 16 }
  var tilesH: Int { (oh + 3) / 4 }
  var tilesW: Int { (ow + 3) / 4 }
  var tiles: Int { n * tilesH * tilesW }

  /// Bytes of the 36 input and product rows of one tile.
  var bytesPerTile: Int { 36 * 16 * (cBlocks + oBlocks) * 4 }

  /// Bytes of the transformed filter (36 matrices of cPadded x oPadded floats).
  var filterBytes: Int { 36 * cBlocks * oBlocks * 256 * 4 }

  /// Whether the threads share each piece of work (every phase split among them) instead of taking
  /// pieces of their own: when the transformed filter is large (the deep layers' 256 and more
  /// channels), so that it is read once per large piece rather than once per small one, which
  /// made the 512->512 layer's products wait on memory.
  var sharesPieces: Bool { filterBytes > 4 << 20 }

  /// Tiles per piece of work. Own pieces: their 36 input and product matrices stay near a core's
  /// 1 MiB L2 cache (about 2 MiB together), and every product keeps at least 32 rows. Shared
  /// pieces: about 16 MiB of matrices (at least 64 tiles), which the last-level cache can hold,
  /// while each product still does 64 or more multiply-adds per filter value it reads.
  /// Depends on the channel counts only, so the pieces (and the results) do not depend on the
  /// thread count.
  var tilesPerChunk: Int {
    let size = sharesPieces ? max((16 << 20) / bytesPerTile, 64) : min(max((2 << 20) / bytesPerTile, 32), 256)
    return min(size, Self.chunkLimit ?? size)
  }

  /// Tiles per piece and pieces: as many pieces as `tilesPerChunk` asks for, of even sizes (the
  /// last one no more than a piece shorter), so that no short last piece runs its products on a
  /// few rows.
  var pieces: (tiles: Int, count: Int) {
    let count = (tiles + tilesPerChunk - 1) / max(tilesPerChunk, 1)
    let size = (tiles + count - 1) / max(count, 1)
    return (size, (tiles + size - 1) / size)
  }

  /// Tiles a thread takes at a time when the threads share a piece's transforms.
  static let tilesPerBlock = 8

  /// At most this many tiles a piece, when set: tests cut tiny images into several pieces, to
  /// reach the code that carries sums and outputs from one piece to the next.
  @TaskLocal static var chunkLimit: Int?

  /// Whether the output transform writes y with streaming stores: when y is larger than the
  /// last-level cache, so that it leaves the cache before anyone reads it and reading its lines
  /// in before writing them is wasted (the 64->64 layer's output transform took a third less).
  /// Tests force it either way (`streamingOutput`) on small images.
  var streamsOutput: Bool { Self.streamingOutput ?? (n * oBlocks * 16 * oh * ow * 4 > Self.lastLevelCacheBytes) }

  /// Forces `streamsOutput` when set.
  @TaskLocal static var streamingOutput: Bool?

  /// The last-level cache's bytes (from sysfs, as CWinograd reads them).
  static let lastLevelCacheBytes = wino_last_level_cache_bytes()

  /// The C kernels' description of it.
  var kernelProblem: wino_problem {
    wino_problem(
      n: n, c: c, h: h, w: w, o: o, oh: oh, ow: ow, pad_top: padTop, pad_left: padLeft, stream_output: streamsOutput ? 1 : 0)
  }
}

// MARK: - Instruction set

/// The instruction set the Winograd kernels run with: the best the processor has, unless a test
/// asks for another (`with(_:_:)`, to check the AVX2 and baseline code on an AVX-512 machine).
enum WinogradISA: Int32, Sendable, CaseIterable {
  case baseline = 0, avx2 = 1, avx512 = 2

  /// What this processor runs best.
  static let best = WinogradISA(rawValue: wino_isa()) ?? .baseline

  @TaskLocal static var override: WinogradISA?

  /// The set in force for the calling task.
  static var current: WinogradISA { override.map { min($0, best) } ?? best }

  /// Runs `body` with `isa` (or the best the processor has, if lower) in force for this task.
  static func with<T>(_ isa: WinogradISA, _ body: () throws -> T) rethrows -> T {
    try $override.withValue(isa) { try body() }
  }
}

extension WinogradISA: Comparable {
  static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

// MARK: - Convolution

/// Winograd F(4x4,3x3) over nChw16c tensors: per piece of `tilesPerChunk` output tiles, the input
/// transform into 36 matrices V_e (tiles x C), the 36 products M_e = V_e U_e with the transformed
/// filter U_e (C x O), and the output transform with the bias and ReLU, all in CWinograd's kernels.
/// Thin layers give each thread pieces of its own (the piece stays in its core's cache); deep
/// layers split each piece's three phases among the threads (`WinogradProblem.sharesPieces`).
/// Either way the threads take pieces, blocks of tiles and products one at a time
/// (`WinogradSchedule`).
enum WinogradConvolution {
  /// Computes y from x (both nChw16c, padded channels of x zero), the transformed filter, and an
  /// optional bias (o values); writes every channel of y, padded ones zero.
  static func run(
    _ p: WinogradProblem, x: UnsafePointer<Float>, filter: WinogradFilter, bias: [Float]?, relu: Bool,
    y: UnsafeMutablePointer<Float>
  ) {
    precondition(filter.c == p.c && filter.o == p.o, "WinogradConvolution: filter does not match the problem")
    var biasBlocks = [Float](repeating: 0, count: p.oBlocks * 16)
    if let bias { for k in 0..<p.o { biasBlocks[k] = bias[k] } }
    let (chunk, chunks) = p.pieces
    let isa = WinogradISA.current.rawValue
    let clock = WinogradPhases.clock
    let (ldv, ldm) = (p.cBlocks * 16, p.oBlocks * 16)
    // The 36 matrices 16 floats more than a piece apart: a multiple of 4 KiB apart, the 36 rows a
    // tile writes or reads fell in one set of the L1 cache (twice as slow a transform, measured).
    let (sv, sm) = (chunk * ldv + 16, chunk * ldm + 16)
    let u = UncheckedSendable(filter.u.pointer.assumingMemoryBound(to: Float.self))
    let xs = UncheckedSendable(x), ys = UncheckedSendable(y)
    let scratch = KernelScratch.current
    biasBlocks.withUnsafeBufferPointer { b in
      let bs = UncheckedSendable(b.baseAddress!)
      var problem = p.kernelProblem
      withUnsafePointer(to: &problem) { cp in
        let cps = UncheckedSendable(cp)
        func input(_ v: UnsafeMutablePointer<Float>, first: Int, rows: Range<Int>) {
          clock.time(.input) {
            wino_input_transform(isa, cps.value, xs.value, first + rows.lowerBound, rows.count, v + rows.lowerBound * ldv, sv)
          }
        }
        func products(_ v: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, count: Int, e: Range<Int>) {
          clock.time(.products) {
            wino_products(isa, v, sv, u.value, m, sm, count, ldv, ldm, e.lowerBound, e.upperBound)
          }
        }
        func output(_ m: UnsafeMutablePointer<Float>, first: Int, rows: Range<Int>) {
          clock.time(.output) {
            wino_output_transform(
              isa, cps.value, m + rows.lowerBound * ldm, sm, first + rows.lowerBound, rows.count, bs.value, relu ? 1 : 0, ys.value)
          }
        }
        if p.sharesPieces {
          let (vb, mb) = Self.matrices(sv, sm, from: scratch)
          let (v, m) = (floats(vb), floats(mb))
          defer { withExtendedLifetime((vb, mb)) {} }
          for index in 0..<chunks {
            let first = index * chunk, count = min(chunk, p.tiles - first)
            WinogradSchedule.blocks(count, block: WinogradProblem.tilesPerBlock) { input(v, first: first, rows: $0) }
            WinogradSchedule.blocks(36, block: 1) { products(v, m, count: count, e: $0) }
            WinogradSchedule.blocks(count, block: WinogradProblem.tilesPerBlock) { output(m, first: first, rows: $0) }
          }
        } else {
          func piece(_ v: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ index: Int) {
            let first = index * chunk, count = min(chunk, p.tiles - first)
            input(v, first: first, rows: 0..<count)
            products(v, m, count: count, e: 0..<36)
            output(m, first: first, rows: 0..<count)
          }
          WinogradSchedule.claim(chunks) { next in
            let (vb, mb) = Self.matrices(sv, sm, from: scratch)
            defer { withExtendedLifetime((vb, mb)) {} }
            while let index = next() { piece(floats(vb), floats(mb), index) }
          }
        }
      }
    }
  }

  /// The 36 V and the 36 M matrices of a piece, `sv` and `sm` floats apart: scratch of the kernel
  /// (`HostBuffer.scratch`), which the forward and backward-filter threads each take.
  static func matrices(_ sv: Int, _ sm: Int, from scratch: KernelScratch?) -> (v: HostBuffer, m: HostBuffer) {
    (HostBuffer.scratch(36 * sv * 4, from: scratch), HostBuffer.scratch(36 * sm * 4, from: scratch))
  }

  /// A scratch buffer's floats. HostBuffers are 64-byte aligned (no 16-float row straddles two
  /// cache lines), and come from the compiled program's arena (`KernelScratch`) or the backend's
  /// pool with their pages mapped: fresh pages for the deep layers' pieces cost a page fault each,
  /// on every call.
  private static func floats(_ buffer: HostBuffer) -> UnsafeMutablePointer<Float> {
    buffer.pointer.assumingMemoryBound(to: Float.self)
  }
}
