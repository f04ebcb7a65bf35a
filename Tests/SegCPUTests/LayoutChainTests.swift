@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Chains of oneDNN ops in blocked layouts

@Suite struct LayoutChainTests {
  /// conv -> relu -> conv (fused ReLU) -> pool -> conv2dTranspose, with odd channel counts.
  static func chain(_ t: [Tensor]) throws -> Tensor {
    let a = try relu(conv2d(t[0], t[1], padding: .valid))
    let b = try conv2d(a, t[2], padding: .same, activation: .relu)
    let p = try maxPool2d(b)
    return try conv2dTranspose(p, t[3], strides: (2, 2), padding: .same)
  }

  static let inputs = [
    random([2, 10, 9, 3], seed: 41),  // x
    random([3, 3, 3, 5], seed: 42),  // 3 -> 5
    random([3, 3, 5, 9], seed: 43),  // 5 -> 9
    random([2, 2, 4, 9], seed: 44),  // transposed 9 -> 4
  ]

  @Test func chainMatchesReference() throws {
    try expectCPUMatchesReference("conv-relu-conv-pool-convT", inputs: Self.inputs, atol: 5e-5) { try Self.chain($0) }
  }

  /// Between oneDNN ops the intermediate tensors keep the producer's layout: none is copied to
  /// row-major, in the forward pass or in the gradients.
  @Test func intermediatesStayInOneDNNLayouts() throws {
    let t = try Self.inputs.map { try Tensor($0, on: CPUBackend.shared) }
    let c1 = try conv2d(t[0], t[1])
    let r = try relu(c1)
    let c2 = try conv2d(r, t[2], padding: .same, activation: .relu)
    let p = try maxPool2d(c2)
    let y = try conv2dTranspose(p, t[3], strides: (2, 2), padding: .same)
    let seed = try Tensor(randomHost(y.type, seed: 3), on: CPUBackend.shared)
    let grads = try gradients(of: y, wrt: [t[0], c1, r, c2, p], seed: seed)

    for (name, tensor) in [("conv", c1), ("relu", r), ("conv+relu", c2), ("pool", p)] + zip(["dx", "dc1", "dr", "dc2", "dp"], grads) {
      let s = try #require(tensor.node.storage as? CPUStorage)
      #expect(!s.hasRowMajorElements, "\(name) was copied to row-major")
    }
    let layout = { (t: Tensor) in (t.node.storage as! CPUStorage).blockedLayout(.activation) }
    #expect(layout(r) == layout(c1), "relu changed its input's layout")
    #expect(layout(c1) != nil, "the conv output is row-major")
  }

  /// A large tensor's copy in another layout serves the op that asked and is not kept (it would
  /// live as long as the graph); a small tensor's is kept.
  @Test func onlySmallTensorsKeepTheirConversions() throws {
    let backend = CPUBackend.shared
    func blocked(_ channels: Int, _ side: Int) throws -> (Tensor, CPUStorage) {
      let x = try Tensor(randomHost(TensorType([1, side, side, 16], .f32), seed: 5), on: backend)
      let w = try Tensor(randomHost(TensorType([1, 1, 16, channels], .f32), seed: 6), on: backend)
      let y = try conv2d(x, w)
      return (y, try #require(y.node.storage as? CPUStorage))
    }
    let (large, largeStorage) = try blocked(16, 128)  // 1 MiB
    try #require(largeStorage.blockedLayout(.activation) != nil, "the conv output should be blocked")
    let first = try large.floats()
    #expect(!largeStorage.hasRowMajorElements)
    #expect(try large.floats() == first)

    let (small, smallStorage) = try blocked(16, 8)
    try #require(smallStorage.blockedLayout(.activation) != nil, "the conv output should be blocked")
    _ = try small.floats()
    #expect(smallStorage.hasRowMajorElements)
  }
}
