import CWinograd
import Foundation
import SegCore

// MARK: - Backward-filter

/// The filter gradient of a 3x3 stride-1 convolution by Winograd F(4x4,3x3):
/// dL/dg = Gᵀ [Σ over tiles (Bᵀ d B) ⊙ (A dy Aᵀ)] G. Per piece of `tilesPerChunk` tiles, the
/// input transform (the forward one) into V_e (tiles x C), the output gradient's into M_e
/// (tiles x O), and the 36 products dU_e += V_eᵀ M_e reducing over the tiles; at the end the
/// transform of the 36 sums back to the 3x3 filter. Tiles past the output's edge see a zero
/// gradient, so partial edge tiles need nothing more.
///
/// Thin layers give each of a fixed number of parts (by the problem only, never the thread count)
/// its own run of pieces and its own sums dU, added in part order at the end; deep layers split
/// each piece's transforms by tiles and its products by e, so one dU of 36 matrices (its 1 MiB and
/// more each) is read once per piece. Either way the result does not depend on the thread count.
enum WinogradFilterGradient {
  /// Parts of a thin layer's tiles with sums of their own: a few per thread of a small machine.
  static let parts = 8

  /// dg [3, 3, C, O] row-major from x (N, C, H, W) and dy (N, O, OH, OW), both nChw16c with
  /// padded channels zero; `p` is the forward convolution's problem.
  static func run(_ p: WinogradProblem, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dg: UnsafeMutablePointer<Float>) {
    let (chunk, chunks) = p.pieces
    let isa = WinogradISA.current.rawValue
    let clock = WinogradPhases.clock
    let (ldv, ldm) = (p.cBlocks * 16, p.oBlocks * 16)
    // 16 floats past a piece, as the forward keeps its matrices (no 36 rows in one cache set).
    let (sv, sm) = (chunk * ldv + 16, chunk * ldm + 16)
    let sums = ldv * ldm * 36
    let xs = UncheckedSendable(x), dys = UncheckedSendable(dy)
    var problem = p.kernelProblem
    withUnsafePointer(to: &problem) { cp in
      let cps = UncheckedSendable(cp)
      func transforms(_ v: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, first: Int, rows: Range<Int>) {
        clock.time(.input) {
          wino_input_transform(isa, cps.value, xs.value, first + rows.lowerBound, rows.count, v + rows.lowerBound * ldv, sv)
        }
        clock.time(.gradient) {
          wino_gradient_transform(isa, cps.value, dys.value, first + rows.lowerBound, rows.count, m + rows.lowerBound * ldm, sm)
        }
      }
      func products(_ v: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ du: UnsafeMutablePointer<Float>,
                    count: Int, e: Range<Int>, accumulate: Bool) {
        clock.time(.products) {
          wino_filter_gradient_products(isa, v, sv, m, sm, du, count, ldv, ldm, e.lowerBound, e.upperBound, accumulate ? 1 : 0)
        }
      }
      let partCount = p.sharesPieces ? 1 : min(chunks, parts)
      let scratch = KernelScratch.current
      let duBuffer = HostBuffer.scratch(partCount * sums * 4, from: scratch)
      let du = UncheckedSendable(duBuffer.pointer.assumingMemoryBound(to: Float.self))
      defer { withExtendedLifetime(duBuffer) {} }
      if p.sharesPieces {
        let (vb, mb) = WinogradConvolution.matrices(sv, sm, from: scratch)
        let (v, m) = (floats(vb), floats(mb))
        defer { withExtendedLifetime((vb, mb)) {} }
        for index in 0..<chunks {
          let first = index * chunk, count = min(chunk, p.tiles - first)
          WinogradSchedule.blocks(count, block: WinogradProblem.tilesPerBlock) { transforms(v, m, first: first, rows: $0) }
          WinogradSchedule.blocks(36, block: 1) { products(v, m, du.value, count: count, e: $0, accumulate: index > 0) }
        }
      } else {
        WinogradSchedule.claim(partCount) { next in
          let (vb, mb) = WinogradConvolution.matrices(sv, sm, from: scratch)
          let (v, m) = (floats(vb), floats(mb))
          defer { withExtendedLifetime((vb, mb)) {} }
          while let part = next() {
            // The part's pieces: an even share of them, in order.
            for index in (part * chunks / partCount)..<((part + 1) * chunks / partCount) {
              let first = index * chunk, count = min(chunk, p.tiles - first)
              transforms(v, m, first: first, rows: 0..<count)
              products(v, m, du.value + part * sums, count: count, e: 0..<36, accumulate: index > part * chunks / partCount)
            }
          }
        }
      }
      let out = UncheckedSendable(dg)
      Parallel.forEach(p.c, grain: max(1, Parallel.defaultGrain / max(36 * p.o * partCount, 1)), align: 1) { ks in
        clock.time(.filter) {
          wino_filter_gradient_transform(isa, du.value, partCount, sums, p.c, p.o, ldv, ldm, ks.lowerBound, ks.upperBound, out.value)
        }
      }
    }
  }

  /// A scratch buffer's floats (64-byte aligned, from the program's arena or the backend's pool).
  private static func floats(_ buffer: HostBuffer) -> UnsafeMutablePointer<Float> {
    buffer.pointer.assumingMemoryBound(to: Float.self)
  }
}
