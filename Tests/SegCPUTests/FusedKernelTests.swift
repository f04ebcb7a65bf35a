@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - The CPU's fused elementwise kernel

private func bits(_ ts: [Tensor]) throws -> [[UInt64]] { try ts.map { try $0.host().doubles.map(\.bitPattern) } }

/// A bias + ReLU, a scaled residual and a ReLU backward over a per-channel and a single value.
private let chain: [(FusedElementwise.Elementwise, [FusedElementwise.Source])] = [
  (.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)]),
  (.unary(Unary(.mulScalar(0.5))), [.input(2)]), (.binary(Binary(.sub)), [.step(1), .step(2)]),
  (.unary(Unary(.exp)), [.step(3)]), (.binary(Binary(.div)), [.step(4), .input(3)]),
  (.reluBackward(ReLUBackward()), [.step(5), .input(2)]),
]

@Suite struct FusedKernelTests {
  /// The fused loop gives the bits of the same steps run one by one by the backend's kernels
  /// (`runSteps`), row-major and in a channel-blocked layout, at sizes that end in a
  /// partial tile and a partial vector, on one thread and on several.
  @Test(arguments: [[1, 6, 5, 16], [2, 9, 7, 8], [1, 33, 31, 32]] as [[Int]]) func fusedLoopEqualsTheStepsOneByOne(dims: [Int]) throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: UInt64(dims.reduce(0, +)))
    let shape = Shape(dims), c = dims[3]
    let full = try Tensor(shape: shape, floats: rng.doubles(shape.count).map(Float.init), on: cpu)
    let other = try Tensor(shape: shape, floats: rng.doubles(shape.count).map(Float.init), on: cpu)
    let bias = try Tensor(shape: [c], floats: rng.doubles(c).map(Float.init), on: cpu)
    let scalar = try Tensor(shape: [1], floats: [1.75], on: cpu)
    // The same values in a channel-blocked layout: out of a transposed 1x1 convolution by the identity.
    let identity = try Tensor(shape: [1, 1, c, c], floats: (0..<(c * c)).map { $0 / c == $0 % c ? 1 : 0 }, on: cpu)
    let blocked = try conv2dBackwardData(full, identity, inputSize: (dims[1], dims[2]), geometry: ConvGeometry(strides: (1, 1), padding: Padding2D(top: 0, bottom: 0, left: 0, right: 0)))
    #expect(try blocked.host().doubles == full.host().doubles)
    let op = try FusedElementwise(inputs: [full.type, bias.type, other.type, scalar.type], chain)
    for x in [full, blocked] {
      let operands = [x, bias, other, scalar].map { Operand(storage: $0.node.storage, type: $0.type) }
      let composed = [try op.runSteps(operands, with: cpu.kernels)]
      for threads in [1, 4] {
        let fast = try #require(try Parallel.$threadLimit.withValue(threads) {
          try FusedKernel.run(op, operands, op.steps.last!.type).map { [$0] }
        })
        let a = try cpu.download(fast[0], type: op.steps.last!.type).doubles, b = try cpu.download(composed[0], type: op.steps.last!.type).doubles
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
      }
      let reference = try op.reference(try [x, bias, other, scalar].map { try $0.host() }, output: op.steps.last!.type).doubles
      let fast = try FusedKernel.run(op, operands, op.steps.last!.type).map { [$0] }!
      let got = try cpu.download(fast[0], type: op.steps.last!.type).doubles
      let worst = zip(got, reference).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
      #expect(worst < 1e-5, "largest relative difference to the reference \(worst)")
    }
  }

  /// A blocked operand's output stays blocked (no reorder to row-major and back), and what the
  /// fused loop does not take (a cast, a general broadcast) is left to the steps one by one.
  @Test func layoutsAndDeclines() throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 5)
    // 16 channels: whole blocks of 8 or 16, so the layout has no padding and the loop takes it.
    let x = try Tensor(shape: [1, 4, 4, 16], floats: rng.doubles(256).map(Float.init), on: cpu)
    let w = try Tensor(shape: [3, 3, 16, 16], floats: rng.doubles(2304).map { Float($0 * 0.2) }, on: cpu)
    let up = try conv2dBackwardData(x, w, inputSize: (8, 8), geometry: ConvGeometry(strides: (2, 2), padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)))
    let bias = try Tensor(shape: [16], floats: rng.doubles(16).map(Float.init), on: cpu)
    let addRelu: [(FusedElementwise.Elementwise, [FusedElementwise.Source])] = [(.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)])]
    let op = try FusedElementwise(inputs: [up.type, bias.type], addRelu)
    let operands = [up, bias].map { Operand(storage: $0.node.storage, type: $0.type) }
    let out = try #require(try FusedKernel.run(op, operands, up.type).map { [$0] })
    let storage = try #require(out[0] as? CPUStorage)
    #expect(!storage.hasRowMajorElements, "the output stays in the convolution's blocked layout")
    #expect(try cpu.download(storage, type: up.type).doubles == (try relu(up + bias)).host().doubles)

    let cast = try FusedElementwise(inputs: [up.type], [(.cast(Cast(dtype: .f64)), [.input(0)]), (.relu(ReLU()), [.step(0)])])
    #expect(try FusedKernel.run(cast, [operands[0]], cast.steps.last!.type) == nil)
    let row = try Tensor(shape: [1, 8, 1, 16], floats: rng.doubles(128).map(Float.init), on: cpu)
    let general = try FusedElementwise(inputs: [up.type, row.type], addRelu)
    let rowOperands = [up, row].map { Operand(storage: $0.node.storage, type: $0.type) }
    #expect(try FusedKernel.run(general, rowOperands, up.type) == nil)
    let composed = try cpu.kernels.run(general, rowOperands, outputs: [up.type])
    #expect(try cpu.download(composed[0], type: up.type).doubles == (try relu(up + row)).host().doubles)
  }

  /// A transposed convolution's bias and ReLU and a loss's arithmetic, compiled on the CPU: fused,
  /// and the replays give the eager bits, gradients included.
  @Test func compiledTransposedConvBiasReLUEqualsEager() throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 9)
    func random(_ dims: [Int], _ scale: Double = 1) throws -> Tensor {
      try Tensor(shape: Shape(dims), floats: rng.doubles(dims.reduce(1, *)).map { Float($0 * scale) }, on: cpu)
    }
    let (w, b) = (try random([3, 3, 16, 16], 0.1), try random([16]))
    let step: ([Tensor]) throws -> [Tensor] = { xs in
      let (value, grads) = try valueAndGradients(at: xs) { ws in
        let y = try conv2dTranspose(ws[0], ws[1], bias: ws[2], activation: .relu)
        let d = try y - 0.25
        return try sum(d * d * 0.5)
      }
      return [value] + grads
    }
    let compiled = CompiledFunction("cpu-fused") { xs, _ in try step(xs) }
    for _ in 0..<3 {
      let xs = [try random([1, 6, 6, 16]), w, b]
      #expect(try bits(compiled(xs)) == bits(step(xs)))
    }
    let program = try #require(compiled.allPrograms.first)
    let fused = program.instructions.compactMap { $0.op as? FusedElementwise }
    #expect(fused.contains { $0.steps.map(\.op.description).starts(with: ["add", "relu"]) }, "the bias and ReLU fuse: \(program)")
    try #require(program.memoryPlan).validate()
  }
}
