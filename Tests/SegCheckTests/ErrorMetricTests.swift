import SegCheck
import SegCore
import Testing

// MARK: - The relative error

@Suite struct ErrorMetricTests {
  @Test func equalTensorsHaveNoError() {
    let e = RelativeError([1, -2, 0, .infinity], [1, -2, 0, .infinity], shape: [4], tolerance: 0)
    #expect(e.error == 0)
    #expect(e.firstMismatch == nil)
  }

  /// Elements above the tensor's rms are judged relatively.
  @Test func largeElementsAreRelative() {
    let b: [Double] = [10, 1, -1, 0.5]
    let e = RelativeError([10.1, 1, -1, 0.5], b, shape: [2, 2], tolerance: 1e-3)
    #expect(abs(e.error - 0.01) < 1e-12)
    #expect(e.worst == Mismatch(index: 0, position: [0, 0], candidate: 10.1, baseline: 10))
  }

  /// A near-zero result of cancellation is judged against the tensor's rms, not itself.
  @Test func cancellationIsJudgedAgainstTheScale() {
    let b: [Double] = [1, -1, 1e-6]
    let e = RelativeError([1, -1, 2e-6], b, shape: [3], tolerance: 1e-4)
    let rms = ((1 + 1 + 1e-12) / 3.0).squareRoot()
    #expect(abs(e.error - 1e-6 / rms) < 1e-15)
    #expect(e.firstMismatch == nil)
    #expect(abs(e.scale - rms) < 1e-15)
  }

  @Test func nanAndInfinityRules() {
    #expect(RelativeError([.nan, 1], [.nan, 1], shape: [2], tolerance: 0).error == 0)
    #expect(RelativeError([.nan, 1], [0, 1], shape: [2], tolerance: 0).error == .infinity)
    #expect(RelativeError([1, 1], [.infinity, 1], shape: [2], tolerance: 0).error == .infinity)
    #expect(RelativeError([1, 2], [1, 2, 3], shape: [3], tolerance: 0).error == .infinity)
  }

  /// An all-zero baseline makes the error absolute.
  @Test func zeroBaselineIsAbsolute() {
    let e = RelativeError([0, 3e-3, 0], [0, 0, 0], shape: [3], tolerance: 1e-3)
    #expect(e.error == 3e-3)
    #expect(e.scale == 1)
    #expect(e.firstMismatch?.index == 1)
  }

  /// The first element over the tolerance and the worst one are reported with their positions.
  @Test func mismatchesNameTheirPositions() {
    var b = [Double](repeating: 1, count: 24), a = b
    a[7] = 1.01
    a[20] = 1.5
    let e = RelativeError(a, b, shape: [2, 3, 4], tolerance: 1e-3)
    #expect(e.firstMismatch == Mismatch(index: 7, position: [0, 1, 3], candidate: 1.01, baseline: 1))
    #expect(e.worst?.position == [1, 2, 0])
    #expect(abs(e.error - 0.5) < 1e-12)
    b[0] = 0
  }

  /// Integer outputs are exact; TF32 loosens only f32 convolutions.
  @Test func toleranceTable() {
    let t = ToleranceTable.standard
    #expect(t.tolerance(.argmax, dtype: .f32, output: .i32, tf32: false) == 0)
    #expect(t.tolerance(.conv2d, dtype: .f32, output: .f32, tf32: true) == t.tf32)
    #expect(t.tolerance(.conv2dBackwardFilter, dtype: .f32, output: .f32, tf32: false) == t.f32)
    #expect(t.tolerance(.add, dtype: .f32, output: .f32, tf32: true) == t.f32)
    #expect(t.tolerance(.conv2d, dtype: .f16, output: .f16, tf32: true) == t.f16)
    #expect(t.f64 < t.f32 && t.f32 < t.f16 && t.f16 < t.bf16)
  }
}
