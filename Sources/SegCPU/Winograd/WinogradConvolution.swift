import CDNNL
import Foundation

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

  /// Tiles per piece of work: the 36 input and product matrices of one piece stay near a core's
  /// 1 MiB L2 cache (about 2 MiB together), and every sgemm keeps at least 32 rows. Depends on
  /// the channel counts only, so the pieces (and the results) do not depend on the thread count.
  var tilesPerChunk: Int {
    let bytesPerTile = 36 * 16 * (cBlocks + oBlocks) * 4
    return min(max((2 << 20) / bytesPerTile, 32), 256)
  }
}

// MARK: - Convolution

/// Winograd F(4x4,3x3) over nChw16c tensors: per piece of `tilesPerChunk` output tiles, the input
/// transform into 36 matrices V_e (tiles x C), 36 sgemms M_e = V_e U_e with the transformed filter
/// U_e (C x O, oneDNN's JIT sgemm, which picks AVX-512 or AVX2 at run time), and the output
/// transform with the bias and ReLU. Pieces run on separate threads, each sgemm on its own thread.
enum WinogradConvolution {
  typealias V = SIMD16<Float>

  /// Computes y from x (both nChw16c, padded channels of x zero), the transformed filter, and an
  /// optional bias (o values); writes every channel of y, padded ones zero.
  static func run(
    _ p: WinogradProblem, x: UnsafePointer<Float>, filter: WinogradFilter, bias: [Float]?, relu: Bool,
    y: UnsafeMutablePointer<Float>
  ) {
    precondition(filter.c == p.c && filter.o == p.o, "WinogradConvolution: filter does not match the problem")
    var biasBlocks = [Float](repeating: 0, count: p.oBlocks * 16)
    if let bias { for k in 0..<p.o { biasBlocks[k] = bias[k] } }
    let chunk = p.tilesPerChunk
    let chunks = (p.tiles + chunk - 1) / chunk
    let u = UncheckedSendable(filter.u.pointer.assumingMemoryBound(to: Float.self))
    let xs = UncheckedSendable(x), ys = UncheckedSendable(y)
    biasBlocks.withUnsafeBufferPointer { b in
      let bs = UncheckedSendable(b.baseAddress!)
      let work = { (range: Range<Int>) in
        let ldv = p.cBlocks * 16, ldm = p.oBlocks * 16
        let v = UnsafeMutablePointer<Float>.allocate(capacity: 36 * chunk * ldv + 16)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: 36 * chunk * ldm + 16)
        defer { v.deallocate(); m.deallocate() }
        OpenMPThreads.single {
          for index in range {
            let first = index * chunk, count = min(chunk, p.tiles - first)
            inputTransform(p, xs.value, tiles: first..<(first + count), into: v, stride: chunk)
            for e in 0..<36 {
              dnnl_sgemm(
                78, 78, Int64(count), Int64(ldm), Int64(p.c), 1, v + e * chunk * ldv, Int64(ldv),
                u.value + e * filter.cPadded * ldm, Int64(ldm), 0, m + e * chunk * ldm, Int64(ldm))
            }
            outputTransform(p, m, stride: chunk, tiles: first..<(first + count), bias: bs.value, relu: relu, into: ys.value)
          }
        }
      }
      // Without OpenMP's thread setting every piece's sgemm would start a team of its own.
      if OpenMPThreads.available {
        Parallel.forEach(chunks, grain: 1, align: 1, work)
      } else {
        work(0..<chunks)
      }
    }
  }

  // MARK: Input transform

  /// V_e[t, c] for the tiles in `tiles` (t counted from the range's start), e = 0..<36, matrix e
  /// starting at e * stride rows.
  private static func inputTransform(
    _ p: WinogradProblem, _ x: UnsafePointer<Float>, tiles: Range<Int>, into v: UnsafeMutablePointer<Float>, stride: Int
  ) {
    let ld = p.cBlocks * 16
    let scratch = UnsafeMutablePointer<V>.allocate(capacity: 3 * 36)
    defer { scratch.deallocate() }
    let d = scratch, t = scratch + 36, out = scratch + 72
    let perImage = p.tilesH * p.tilesW
    for tile in tiles {
      let img = tile / perImage, r = tile % perImage
      let y0 = (r / p.tilesW) * 4 - p.padTop, x0 = (r % p.tilesW) * 4 - p.padLeft
      let inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= p.h && x0 + 6 <= p.w
      let row = tile - tiles.lowerBound
      for cb in 0..<p.cBlocks {
        let plane = x + ((img * p.cBlocks + cb) * p.h * p.w) * 16
        if inside {
          for i in 0..<6 {
            let src = UnsafeRawPointer(plane + ((y0 + i) * p.w + x0) * 16)
            for j in 0..<6 { d[6 * i + j] = src.loadUnaligned(fromByteOffset: j * 64, as: V.self) }
          }
        } else {
          for i in 0..<6 {
            let yy = y0 + i
            for j in 0..<6 {
              let xx = x0 + j
              d[6 * i + j] = yy >= 0 && yy < p.h && xx >= 0 && xx < p.w
                ? UnsafeRawPointer(plane + (yy * p.w + xx) * 16).loadUnaligned(as: V.self) : V()
            }
          }
        }
        WinogradTransforms.input(d, t, out)
        let base = UnsafeMutableRawPointer(v + row * ld + cb * 16)
        for e in 0..<36 { base.storeBytes(of: out[e], toByteOffset: e * stride * ld * 4, as: V.self) }
      }
    }
  }

  // MARK: Output transform

  /// y for the tiles in `tiles` from their products M_e[t, o] (matrix e at e * stride rows), with
  /// the bias (padded to whole blocks with zeros) and ReLU.
  private static func outputTransform(
    _ p: WinogradProblem, _ m: UnsafePointer<Float>, stride: Int, tiles: Range<Int>, bias: UnsafePointer<Float>, relu: Bool,
    into y: UnsafeMutablePointer<Float>
  ) {
    let ld = p.oBlocks * 16
    let scratch = UnsafeMutablePointer<V>.allocate(capacity: 36 + 24 + 16)
    defer { scratch.deallocate() }
    let mm = scratch, t = scratch + 36, out = scratch + 60
    let perImage = p.tilesH * p.tilesW
    for tile in tiles {
      let img = tile / perImage, r = tile % perImage
      let y0 = (r / p.tilesW) * 4, x0 = (r % p.tilesW) * 4
      let rows = min(4, p.oh - y0), cols = min(4, p.ow - x0)
      let row = tile - tiles.lowerBound
      for ob in 0..<p.oBlocks {
        let base = UnsafeRawPointer(m + row * ld + ob * 16)
        for e in 0..<36 { mm[e] = base.loadUnaligned(fromByteOffset: e * stride * ld * 4, as: V.self) }
        WinogradTransforms.output(mm, t, out)
        let b = UnsafeRawPointer(bias + ob * 16).loadUnaligned(as: V.self)
        let plane = y + ((img * p.oBlocks + ob) * p.oh * p.ow) * 16
        for i in 0..<rows {
          for j in 0..<cols {
            var value = out[4 * i + j] + b
            if relu { value = value.replacing(with: 0, where: value .< 0) }
            UnsafeMutableRawPointer(plane + ((y0 + i) * p.ow + x0 + j) * 16).storeBytes(of: value, as: V.self)
          }
        }
      }
    }
  }
}

// MARK: - OpenMP threads

/// oneDNN's sgemm spreads each call over an OpenMP team; a piece of Winograd work that already has
/// a core of its own runs its sgemms on that thread alone. OpenMP's setting is per thread, so it
/// is set for the piece and put back after (libgomp is loaded with oneDNN; looked up by name).
enum OpenMPThreads {
  private typealias SetThreads = @convention(c) (Int32) -> Void
  private typealias GetThreads = @convention(c) () -> Int32
  private static let setter: SetThreads? = dlsym(nil, "omp_set_num_threads").map { unsafeBitCast($0, to: SetThreads.self) }
  private static let getter: GetThreads? = dlsym(nil, "omp_get_max_threads").map { unsafeBitCast($0, to: GetThreads.self) }

  /// Whether the OpenMP runtime was found.
  static var available: Bool { setter != nil && getter != nil }

  /// Runs `body` with this thread's OpenMP teams limited to one thread.
  static func single<T>(_ body: () throws -> T) rethrows -> T {
    guard let setter, let getter else { return try body() }
    let before = getter()
    setter(1)
    defer { setter(before) }
    return try body()
  }
}
