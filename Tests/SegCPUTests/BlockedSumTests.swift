@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Per-channel sums of blocked activations

/// The bias gradient's sum over N, H and W of an activation in nChw8c or nChw16c, read in that
/// layout, against the reference backend: channels not a multiple of the block, 1x1 images, a
/// batch of 2, and enough rows for several chunks.
@Suite struct BlockedSumTests {
  static let shapes: [[Int]] = [[2, 3, 5, 12], [2, 1, 1, 20], [1, 47, 45, 24], [2, 4, 4, 32]]

  /// The CPU's sum of `host` uploaded blocked, and whether the input then had a row-major copy.
  private static func blockedSum(_ host: HostTensor, block: Int, keepDims: Bool = false) throws -> (HostTensor, copied: Bool) {
    let x = try Tensor(host, on: BlockedUploads(CPUBackend.shared, block: block))
    let y = try sum(x, axes: [0, 1, 2], keepDims: keepDims).host()
    let storage = try #require(x.node.storage as? CPUStorage)
    return (y, storage.hasRowMajorElements)
  }

  @Test(arguments: [8, 16], [DType.f32, .bf16])
  func matchesReference(block: Int, dtype: DType) throws {
    for (i, dims) in Self.shapes.enumerated() {
      let host = randomHost(TensorType(Shape(dims), dtype), seed: 90 + UInt64(i))
      let expected = try sum(Tensor(host), axes: [0, 1, 2]).host()
      let (actual, copied) = try Self.blockedSum(host, block: block)
      // bf16 rounds the sum once (8 bits of mantissa); f32 differs by summation order only.
      let (atol, rtol) = dtype == .bf16 ? (1e-2, 8e-3) : (1e-4, 1e-5)
      expectClose(actual, expected, atol: atol, rtol: rtol, "\(dims) \(dtype) block \(block)")
      // The Swift kernel would have reordered it, and a small tensor keeps its copy.
      #expect(!copied, "\(dims) \(dtype) block \(block): the input was reordered to row-major")
    }
  }

  @Test func keepDims() throws {
    let host = random([2, 3, 5, 12], seed: 97)
    let expected = try sum(Tensor(host), axes: [0, 1, 2], keepDims: true).host()
    expectClose(try Self.blockedSum(host, block: 16, keepDims: true).0, expected, atol: 1e-4, rtol: 1e-5, "keepDims")
  }

  /// Chunks are cut by the shape, so one thread and all of them give the same bits.
  @Test func bitsDoNotDependOnTheThreadCount() throws {
    let host = random([1, 47, 45, 24], seed: 98)
    let one = try Parallel.$threadLimit.withValue(1) { try Self.blockedSum(host, block: 16).0 }
    let all = try Self.blockedSum(host, block: 16).0
    #expect(one.doubles == all.doubles)
  }
}
