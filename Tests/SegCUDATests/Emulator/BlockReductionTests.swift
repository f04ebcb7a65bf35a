import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Block reductions on the emulator

/// The block-per-row softmax (shared memory, warp shuffles, barriers: the emulator runs a block's
/// threads as fibers between barriers) against softmax computed in f64, for rows long enough to
/// take it and of lengths that leave threads idle in the last stride.
@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct BlockReductionTests {
  /// softmax and log-softmax of 5 rows of n f32 logits, through the backend (which picks the
  /// block kernel from `CUDABackend.blockRowLength` on) and straight from the kernels.
  @Test(arguments: [128, 300, 1000])
  func blockSoftmaxMatchesF64(_ n: Int) throws {
    let backend = try #require(emulatedBackend)
    #expect(n >= CUDABackend.blockRowLength)
    let rows = 5
    var rng = SeededRandom(seed: UInt64(n))
    let logits = rng.doubles(rows * n).map { Double(Float($0 * 16 - 8)) }
    let type = TensorType([rows, n], .f32)
    let x = try backend.upload(HostTensor(type: type, doubles: logits))
    for log in [false, true] {
      let y = try backend.kernels.run(Softmax(log: log), [Operand(storage: x, type: type)], outputs: [type])[0]
      let got = try backend.download(y, type: type).doubles
      var worst = 0.0
      for r in 0..<rows {
        let row = logits[(r * n)..<((r + 1) * n)]
        let m = row.max()!, total = row.reduce(0) { $0 + Foundation.exp($1 - m) }
        for (j, v) in row.enumerated() {
          let expected = log ? (v - m) - Foundation.log(total) : Foundation.exp(v - m) / total
          worst = max(worst, abs(got[r * n + j] - expected) / max(1, abs(expected)))
        }
      }
      #expect(worst < 1e-5, "n \(n), log \(log): relative error \(worst)")
    }
  }

  /// A NaN anywhere in a long row makes that row all NaN and leaves the others alone, as the
  /// thread-per-row kernel does; +infinity too (inf - inf).
  @Test func nanAndInfinityPoisonOnlyTheirRow() throws {
    let rows = 4, n = 200
    var logits = [Float](repeating: 0.5, count: rows * n)
    logits[1 * n + 137] = .nan
    logits[2 * n + 0] = .nan
    logits[3 * n + 55] = .infinity
    let out = values(
      try runKernel(
        "softmaxBlock_f32", count: rows * 256, inputs: [bytes(logits)], outputBytes: rows * n * 4,
        extra: [.int64(Int64(rows)), .int64(Int64(n))]), as: Float.self)
    #expect(out[0..<n].allSatisfy { abs($0 - 1 / Float(n)) < 1e-6 })
    for r in 1..<rows { #expect(out[(r * n)..<((r + 1) * n)].allSatisfy { $0.isNaN }, "row \(r)") }
  }

  /// f16 rows: the block kernel's outputs, rounded once to f16, within an f16 step of f64's.
  @Test func halfRowsRoundOnce() throws {
    let rows = 3, n = 257
    var rng = SeededRandom(seed: 11)
    let logits = rng.doubles(rows * n).map { Float16(Float($0 * 8 - 4)) }
    let out = values(
      try runKernel(
        "logSoftmaxBlock_f16", count: rows * 256, inputs: [bytes(logits)], outputBytes: rows * n * 2,
        extra: [.int64(Int64(rows)), .int64(Int64(n))]), as: Float16.self)
    for r in 0..<rows {
      let row = logits[(r * n)..<((r + 1) * n)].map(Double.init)
      let m = row.max()!, logTotal = Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
      for (j, v) in row.enumerated() {
        let expected = (v - m) - logTotal
        #expect(abs(Double(out[r * n + j]) - expected) <= 4e-3 * max(1, abs(expected)), "row \(r), \(j)")
      }
    }
  }
}
