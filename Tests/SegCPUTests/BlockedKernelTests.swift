@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Crops, pads and concats of blocked tensors

/// The inputs come out of a 1x1 convolution, so that they are in oneDNN's blocked layout and the
/// window kernels (not the row-major Swift kernels) run; values and gradients are checked against
/// the reference backend.
@Suite struct BlockedKernelTests {
  /// conv 1x1: [1,H,W,8] -> [1,H,W,channels], blocked on the CPU.
  private static func blocked(_ x: Tensor, _ w: Tensor) throws -> Tensor { try conv2d(x, w) }

  private static func inputs(channels: [Int], side: Int = 9) -> [HostTensor] {
    [random([1, side, side + 1, 8], seed: 71)] + channels.enumerated().map { random([1, 1, 8, $0.element], seed: 72 + UInt64($0.offset)) }
  }

  @Test(arguments: [16, 12])
  func spatialCrop(channels: Int) throws {
    try expectCPUMatchesReference("crop of \(channels) channels", inputs: Self.inputs(channels: [channels])) { t in
      try slice(Self.blocked(t[0], t[1]), starts: [0, 2, 3, 0], sizes: [1, 5, 6, channels])
    }
  }

  @Test func channelSplitOnBlocks() throws {
    try expectCPUMatchesReference("channel split", inputs: Self.inputs(channels: [32])) { t in
      let y = try Self.blocked(t[0], t[1])
      let a = try slice(y, starts: [0, 0, 0, 0], sizes: [1, 9, 10, 16])
      let b = try slice(y, starts: [0, 1, 0, 16], sizes: [1, 8, 10, 16])
      return try concat([a, b], axis: 1)
    }
  }

  /// Channel windows that end at a last, partial block.
  @Test func channelWindowsEndingInAPartialBlock() throws {
    try expectCPUMatchesReference("partial block", inputs: Self.inputs(channels: [12])) { t in
      let y = try Self.blocked(t[0], t[1])
      let tail = try slice(y, starts: [0, 0, 1, 8], sizes: [1, 9, 8, 4])
      return try pad(tail, before: [0, 0, 0, 8], after: [0, 0, 0, 0], mode: .zero) + slice(y, starts: [0, 0, 1, 0], sizes: [1, 9, 8, 12])
    }
  }

  @Test(arguments: [16, 12])
  func zeroPad(channels: Int) throws {
    try expectCPUMatchesReference("zero pad of \(channels) channels", inputs: Self.inputs(channels: [channels])) { t in
      try pad(Self.blocked(t[0], t[1]), before: [0, 1, 2, 0], after: [0, 3, 0, 0], mode: .zero)
    }
  }

  @Test(arguments: [[16, 8], [16, 12], [12, 16]])
  func concatOfBlockedTensors(channels: [Int]) throws {
    try expectCPUMatchesReference("concat \(channels)", inputs: Self.inputs(channels: channels)) { t in
      try concat([Self.blocked(t[0], t[1]), Self.blocked(t[0], t[2])], axis: -1)
    }
  }

  @Test func concatOfABatch() throws {
    let inputs = [random([2, 5, 6, 8], seed: 83), random([1, 1, 8, 16], seed: 84), random([1, 1, 8, 12], seed: 85)]
    try expectCPUMatchesReference("concat of a batch", inputs: inputs) { t in
      try concat([Self.blocked(t[0], t[1]), Self.blocked(t[0], t[2])], axis: -1)
    }
  }

  @Test func concatOfBlockedAndRowMajor() throws {
    try expectCPUMatchesReference("concat with a row-major tensor", inputs: Self.inputs(channels: [16]) + [random([1, 9, 10, 8], seed: 80)]) { t in
      try concat([Self.blocked(t[0], t[1]), t[2]], axis: -1)
    }
  }

  @Test(arguments: [16, 12])
  func addOfLikeTensors(channels: Int) throws {
    try expectCPUMatchesReference("add of \(channels) channels", inputs: Self.inputs(channels: [channels, channels])) { t in
      try Self.blocked(t[0], t[1]) + Self.blocked(t[0], t[2])
    }
  }

  @Test func addOfBlockedAndRowMajor() throws {
    try expectCPUMatchesReference("add with a row-major tensor", inputs: Self.inputs(channels: [16]) + [random([1, 9, 10, 16], seed: 81)]) { t in
      try t[2] + Self.blocked(t[0], t[1])
    }
  }

  @Test(arguments: [[12], [1, 1, 1, 12]])
  func addOfAPerChannelBias(biasShape: [Int]) throws {
    try expectCPUMatchesReference("bias \(biasShape)", inputs: Self.inputs(channels: [12]) + [random(Shape(biasShape), seed: 82)]) { t in
      try relu(Self.blocked(t[0], t[1]) + t[2]) + relu(t[2] + Self.blocked(t[0], t[1]))
    }
  }

  /// A fused bias add and ReLU (as the compiler fuses a transposed conv's) runs as oneDNN's add
  /// with the ReLU as its post-op: the output stays blocked and has the bits of the unfused blocked
  /// add and ReLU, and the values of the reference backend. A second full-size operand (blocked or
  /// row-major) is left to the Swift loop (nil), with the same values.
  @Test(arguments: ["bias", "bias [1,1,1,C]", "blocked", "row-major"])
  func fusedBiasAndReLUIsOneBlockedPass(second: String) throws {
    let cpu = CPUBackend.shared
    let shapes: [String: [Int]] = ["bias": [16], "bias [1,1,1,C]": [1, 1, 1, 16], "blocked": [1, 1, 8, 16], "row-major": [1, 9, 10, 16]]
    let hosts = Self.inputs(channels: [16]) + [random(Shape(shapes[second]!), seed: 86)]
    let steps: [(FusedElementwise.Elementwise, [FusedElementwise.Source])] = [
      (.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)]),
    ]
    let operand = { (t: [Tensor]) throws -> Tensor in second == "blocked" ? try Self.blocked(t[0], t[2]) : t[2] }
    try expectCPUMatchesReference("fused add and relu of a \(second) operand", inputs: hosts) { t in
      try fusedElementwise([Self.blocked(t[0], t[1]), operand(t)], steps)
    }
    let t = try hosts.map { try Tensor($0, on: cpu) }
    let (x, y) = (try Self.blocked(t[0], t[1]), try operand(t))
    let op = try FusedElementwise(inputs: [x.type, y.type], steps)
    let storages = try [x, y].map { try CPUBackend.cpuStorage($0.node.storage, op: "test") }
    let fused = try BlockedKernels.fusedAdd(op, storages, x.type)
    guard second.hasPrefix("bias") else {
      #expect(fused == nil)
      return
    }
    let out = try #require(fused)
    #expect(!out.hasRowMajorElements && out.blockedLayout(.activation) != nil, "the output left the blocked layout")
    #expect(try cpu.download(out, type: x.type).doubles.map(\.bitPattern) == relu(x + y).host().doubles.map(\.bitPattern))
    // Other steps (here a ReLU before the add) are left to the other candidates, and so is bf16.
    let other = try FusedElementwise(inputs: [x.type, y.type], [(.relu(ReLU()), [.input(0)]), (.binary(Binary(.add)), [.step(0), .input(1)])])
    #expect(try BlockedKernels.fusedAdd(other, storages, x.type) == nil)
    guard cpu.bf16Convolutions else { return }
    let (x16, y16) = (try Self.blocked(cast(t[0], to: .bf16), cast(t[1], to: .bf16)), try cast(y, to: .bf16))
    let op16 = try FusedElementwise(inputs: [x16.type, y16.type], steps)
    #expect(try BlockedKernels.fusedAdd(op16, [x16, y16].map { try CPUBackend.cpuStorage($0.node.storage, op: "test") }, x16.type) == nil)
  }

  /// The U-Net's crop, concat, pad and bias add keep the blocked layout: no row-major copy is made.
  @Test func cropAndConcatStayBlocked() throws {
    let t = try Self.inputs(channels: [16, 16]).map { try Tensor($0, on: CPUBackend.shared) }
    let skip = try Self.blocked(t[0], t[1])
    let up = try slice(Self.blocked(t[0], t[2]), starts: [0, 1, 1, 0], sizes: [1, 6, 6, 16])
    let crop = try slice(skip, starts: [0, 1, 2, 0], sizes: [1, 6, 6, 16])
    let joined = try concat([up, crop], axis: -1)
    let padded = try pad(crop, before: [0, 1, 2, 0], after: [0, 2, 2, 0], mode: .zero)
    let biased = try crop + slice(reshape(t[1], [128]), starts: [0], sizes: [16])
    for (name, tensor) in [("skip", skip), ("crop", crop), ("concat", joined), ("pad", padded), ("add", biased)] {
      let s = try #require(tensor.node.storage as? CPUStorage)
      #expect(!s.hasRowMajorElements, "\(name) was copied to row-major")
      #expect(s.blockedLayout(.activation) != nil, "\(name) is not blocked")
    }
  }
}
