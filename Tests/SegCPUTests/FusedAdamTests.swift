import SegCPU
import SegCore
import SegNN
import SegTestSupport
import Testing

// MARK: - Fused Adam

@Suite struct FusedAdamTests {
  /// Three updates of odd-sized parameters with the CPU's fused kernel equal the same updates
  /// written with ops, bit for bit (both round the same f32 operations in the same order).
  @Test func fusedUpdateEqualsTheUpdateWrittenWithOps() throws {
    let cpu = CPUBackend.shared
    var rng = SeededRandom(seed: 5)
    let shapes: [Shape] = [[3, 3, 5, 7], [7], [1037]]
    func parameters() throws -> [Parameter] {
      var r = SeededRandom(seed: 9)
      return try shapes.enumerated().map { i, s in
        Parameter("p\(i)", try Tensor(shape: s, floats: r.doubles(s.count).map(Float.init), on: cpu))
      }
    }
    let (fused, plain) = (try parameters(), try parameters())
    let (fusedAdam, plainAdam) = (Adam(learningRate: 1e-2), Adam(learningRate: 1e-2))
    plainAdam.usesFusedUpdate = false
    for _ in 0..<3 {
      let grads = try shapes.map { try Tensor(shape: $0, floats: rng.doubles($0.count).map(Float.init), on: cpu) }
      try fusedAdam.update(fused, gradients: grads)
      try plainAdam.update(plain, gradients: grads)
    }
    for (a, b) in zip(fused, plain) {
      let (x, y) = (try a.value.floats(), try b.value.floats())
      let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
      #expect(x == y, "\(a.name): largest difference \(worst)")
      let (ma, mb) = (fusedAdam.moments[a.name]!, plainAdam.moments[b.name]!)
      #expect(try ma.m.floats() == mb.m.floats() && ma.v.floats() == mb.v.floats())
    }
    #expect(fusedAdam.step == 3)
  }

  /// The CPU's kernel equals the op's reference kernel (the formula in f32) bit for bit.
  @Test func cpuKernelEqualsTheReference() throws {
    var rng = SeededRandom(seed: 3)
    let shape: Shape = [1037]
    let values = (0..<4).map { i in rng.doubles(shape.count).map { Float(i == 2 ? abs($0) : $0) } }
    let c = AdamConstants(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, stepSize: 1e-3)
    func update(on backend: any Backend) throws -> [[Float]] {
      let t = try values.map { try Tensor(shape: shape, floats: $0, on: backend) }
      let r = try adamUpdate(parameter: t[0], m: t[1], v: t[2], gradient: t[3], c)
      return try [r.parameter, r.m, r.v].map { try $0.floats() }
    }
    #expect(try update(on: CPUBackend.shared) == update(on: ReferenceBackend.shared))
  }

  /// Operands of the wrong dtype are refused by the op's shape rule, with the op's name.
  @Test func otherDtypesAreRefused() throws {
    let p = try Tensor(HostTensor(type: TensorType([4], .f64), doubles: [1, 2, 3, 4]), on: CPUBackend.shared)
    let c = AdamConstants(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, stepSize: 1e-3)
    #expect { try adamUpdate(parameter: p, m: p, v: p, gradient: p, c) } throws: {
      "\($0)".contains("adamUpdate") && "\($0)".contains("f32")
    }
  }
}
