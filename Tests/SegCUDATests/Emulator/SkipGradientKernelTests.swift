import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Fixtures

/// `shape`'s values from `seed` in [-2, 2) (some negative, for ReLU's mask), as `dtype`.
private func host(_ shape: Shape, seed: UInt64, _ dtype: DType) -> HostTensor {
  var rng = SeededRandom(seed: seed)
  return HostTensor(type: TensorType(shape, dtype), doubles: rng.doubles(shape.count).map { $0 * 4 - 2 })
}

// MARK: - Tests

/// The encoder gradient's kernel on the emulator: one launch, every pixel of each stride cell
/// written from one window maximum, equal bit for bit to the reference (whose ops it joins, each
/// rounded as they are), through its vector path (channels in whole 16-byte vectors) and its
/// per-channel path; overlapping windows are left to the separate ops. Max pooling's backward
/// shares the per-window code.
@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct SkipGradientKernelTests {
  /// (x, dy, g shapes, channels, pool): the U-Net's 2x2 pool with channels in vectors of every
  /// dtype; odd sizes and 3 channels (per channel); a stride of 3 (pixels of no window).
  static let shapes: [(x: Shape, dy: Shape, g: Shape, channels: Int, pool: MaxPool2D)] = [
    ([2, 12, 10, 16], [2, 6, 5, 16], [2, 6, 4, 24], 8, MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2)),
    ([1, 9, 7, 3], [1, 4, 3, 3], [1, 5, 4, 5], 2, MaxPool2D(windowH: 2, windowW: 2, strideH: 2, strideW: 2)),
    ([1, 8, 8, 8], [1, 3, 3, 8], [1, 4, 6, 16], 8, MaxPool2D(windowH: 2, windowW: 2, strideH: 3, strideW: 3)),
  ]

  @Test(arguments: [DType.f16, .bf16, .f32, .f64])
  func oneLaunchEqualsTheSeparateOps(dtype: DType) throws {
    let device = RecordingDevice(wrapping: try HostEmulator.shared.get())
    let backend = CUDABackend(device: device, convolutions: nil)
    for (k, s) in Self.shapes.enumerated() {
      for relu in [false, true] {
        let inputs = [host(s.x, seed: UInt64(3 * k), dtype), host(s.dy, seed: UInt64(3 * k + 1), dtype), host(s.g, seed: UInt64(3 * k + 2), dtype)]
        let op = SkipGradient(pool: s.pool, channels: s.channels, reluBackward: relu)
        let expected = try op.reference(inputs, output: TensorType(s.x, dtype))
        device.reset()
        let operands = try inputs.map { Operand(storage: try backend.upload($0), type: $0.type) }
        let out = try backend.kernels.run(op, operands, outputs: [TensorType(s.x, dtype)])[0]
        let got = try backend.download(out, type: TensorType(s.x, dtype))
        let differing = zip(got.doubles, expected.doubles).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(dtype) case \(k), relu \(relu): \(differing) of \(expected.doubles.count) values differ")
        #expect(device.counts.launches == 1 && device.counts.byName["skipGradient_\(dtype.rawValue)"] == 1, "\(device.counts.byName)")
      }
    }
  }

  /// Max pooling's backward alone runs the same per-window code (no skip) where windows do not
  /// overlap, with the reference's bits.
  @Test(arguments: [DType.f16, .f32])
  func maxPoolBackwardPerWindow(dtype: DType) throws {
    let device = RecordingDevice(wrapping: try HostEmulator.shared.get())
    let backend = CUDABackend(device: device, convolutions: nil)
    for (k, s) in Self.shapes.enumerated() {
      let inputs = [host(s.x, seed: UInt64(7 * k), dtype), host(s.dy, seed: UInt64(7 * k + 1), dtype)]
      func run(on b: any Backend) throws -> HostTensor {
        try maxPool2dBackward(
          Tensor(inputs[0], on: b), Tensor(inputs[1], on: b), window: (s.pool.windowH, s.pool.windowW),
          strides: (s.pool.strideH, s.pool.strideW)
        ).host()
      }
      let (got, expected) = (try run(on: backend), try run(on: ReferenceBackend.shared))
      let differing = zip(got.doubles, expected.doubles).filter { $0.bitPattern != $1.bitPattern }.count
      #expect(differing == 0, "\(dtype) case \(k): \(differing) of \(expected.doubles.count) values differ")
    }
  }

  /// Windows that overlap (a pixel of two windows) run as the separate ops, with the same values.
  @Test func overlappingWindowsRunAsTheSeparateOps() throws {
    let device = RecordingDevice(wrapping: try HostEmulator.shared.get())
    let backend = CUDABackend(device: device, convolutions: nil)
    let op = SkipGradient(pool: MaxPool2D(windowH: 3, windowW: 3, strideH: 2, strideW: 2), channels: 2, reluBackward: true)
    let inputs = [host([1, 7, 7, 2], seed: 1, .f32), host([1, 3, 3, 2], seed: 2, .f32), host([1, 5, 4, 4], seed: 3, .f32)]
    let operands = try inputs.map { Operand(storage: try backend.upload($0), type: $0.type) }
    let out = try backend.kernels.run(op, operands, outputs: [TensorType([1, 7, 7, 2], .f32)])[0]
    let got = try backend.download(out, type: TensorType([1, 7, 7, 2], .f32))
    #expect(got.doubles == (try op.reference(inputs, output: TensorType([1, 7, 7, 2], .f32))).doubles)
    #expect(device.counts.byName["skipGradient_f32"] == nil && device.counts.byName["maxPool2dBackward_f32"] == 1, "\(device.counts.byName)")
  }
}
