import CBlocked
import SegCore
@testable import SegCPU
import SegTestSupport
import Testing

// MARK: - The blocked skip gradient's instruction sets

/// The blocked skip-gradient kernel gives the same bits compiled for every instruction set this
/// processor runs (AVX-512, AVX2, baseline): the backend runs the best one, which the conformance
/// cases check against the reference; a processor with less runs one of the others.
@Suite struct BlockedSkipGradientTests {
  @Test(arguments: [(16, true), (8, false)])
  func everyInstructionSetGivesTheSameBits(block: Int, relu: Bool) {
    // Two images, x 9x7 with 2 blocks, 2x2 windows at stride 2 (a last row and column in no
    // window), g 5x4 with 3 blocks, the skip's from the second on.
    let (n, h, w, blocks) = (2, 9, 7, 2)
    let pool = MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2)
    let (x, pooled, g): (Shape, Shape, Shape) = ([n, h, w, blocks * block], [n, 4, 3, blocks * block], [n, 5, 4, 3 * block])
    var geometry = blocked_skip_geometry(x, pooled: pooled, g: g, pool, block, block)
    var rng = SeededRandom(seed: UInt64(block))
    // Values with ties and a NaN, so that the window rule is exercised.
    func values(_ count: Int) -> [Float] { rng.doubles(count).map { Float(($0 * 8).rounded(.down) - 3) } }
    var xs = values(x.count)
    xs[5] = .nan
    let (dys, gs) = (values(pooled.count), values(g.count))
    let rows = n * blocks * geometry.cells_h
    var results: [[UInt32]] = []
    for isa in Int32(BLOCKED_ISA_BASELINE)...blocked_best_isa() {
      var out = [Float](repeating: .infinity, count: x.count)
      withUnsafePointer(to: &geometry) { s in
        blocked_skip_gradient_rows(isa, s, 0, rows, xs, dys, gs, &out, relu ? 1 : 0)
      }
      #expect(!out.contains(.infinity), "isa \(isa) left pixels unwritten")
      results.append(out.map(\.bitPattern))
    }
    print("blocked skip gradient: \(results.count) instruction sets compared")
    for (isa, r) in results.enumerated().dropFirst() { #expect(r == results[0], "isa \(isa) differs from the baseline") }
  }
}
