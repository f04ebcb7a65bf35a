import Foundation
import SegCheck
import SegCore
import Testing

@testable import SegCUDA

// MARK: - One-launch sums over rows

/// `sumRows`, the one-launch sum of row-major [batches, rows, cols] over its rows (every bias
/// gradient, every sum of a whole tensor, per-image sums over the pixels), against the reference backend on the emulator: its blocks take
/// tickets, and the last block of each tile of columns adds the tile's slabs.
@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct RowSumTests {
  /// Odd shapes: one row, fewer rows than a slab, columns that fill no tile, one tile plus one
  /// column, several tiles, several images, and rows enough for many slabs; in every floating dtype. The bias
  /// gradient of a conv with ReLU (reluBackward, then a sum over [N,H,W]) is one launch of it.
  @Test(arguments: [DType.f32, .f16, .bf16, .f64])
  func matchesTheReference(_ dtype: DType) throws {
    let device = RecordingDevice(wrapping: try HostEmulator.shared.get())
    let cuda = CUDABackend(device: device, convolutions: nil)
    let tolerance = dtype == .f64 || dtype == .f32 ? 1e-5 : dtype == .f16 ? 2e-3 : 1e-2
    for (k, shape) in [[1, 1, 1, 5], [1, 3, 1, 2], [2, 5, 7, 33], [3, 40, 41, 3], [1, 1, 1_100, 100], [70_001, 1, 1, 1]].enumerated() {
      let dy = randomHost(TensorType(Shape(shape), dtype), seed: UInt64(k))
      let y = randomHost(TensorType(Shape(shape), dtype), seed: UInt64(100 + k))
      func biasGradient(_ b: any Backend) throws -> [Double] {
        try sum(reluBackward(Tensor(dy, on: b), Tensor(y, on: b)), axes: [0, 1, 2]).host().doubles
      }
      device.reset()
      let got = try biasGradient(cuda)
      #expect(device.counts.launches == 2, "\(shape): reluBackward and one sumRows, not \(device.counts.launches)")
      let expected = try biasGradient(ReferenceBackend.shared)
      let worst = zip(got, expected).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
      #expect(got.count == expected.count && worst <= tolerance, "\(shape) \(dtype): relative error \(worst)")
      // A sum of everything, and per image over the pixels (the dice loss's): one launch each.
      for axes in [[0, 1, 2, 3], [1, 2]] {
        device.reset()
        let a = try sum(Tensor(dy, on: cuda), axes: axes).host().doubles
        #expect(device.counts.launches == 1, "\(shape) axes \(axes): \(device.counts.launches) launches")
        let r = try sum(Tensor(dy, on: ReferenceBackend.shared), axes: axes).host().doubles
        let worst = zip(a, r).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
        #expect(a.count == r.count && worst <= tolerance, "\(shape) \(dtype) axes \(axes): relative error \(worst)")
      }
    }
  }

  /// The counters are back at zero after every launch, so the same sum gives the same bits again
  /// (a counter left behind would make a later launch's wrong block finish, or none).
  @Test func countersAreResetForTheNextLaunch() throws {
    let emulator = try HostEmulator.shared.get()
    let cuda = CUDABackend(device: emulator, convolutions: nil)
    let x = try Tensor(randomHost(TensorType([600, 70], .f32), seed: 5), on: cuda)
    let first = try sum(x, axes: [0]).host().floats
    for _ in 0..<3 { #expect(try sum(x, axes: [0]).host().floats.map(\.bitPattern) == first.map(\.bitPattern)) }
    var counters = [UInt32](repeating: 1, count: ReductionCounters.capacity)
    try counters.withUnsafeMutableBytes { try emulator.download(try cuda.reductionCounters.pointer(), into: $0) }
    #expect(counters.allSatisfy { $0 == 0 })
  }
}
