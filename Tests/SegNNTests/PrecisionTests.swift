import SegCore
import SegNN
import SegTestSupport
import Testing

// MARK: - Policy

@Suite struct PrecisionPolicyTests {
  @Test func eachPrecisionsComputeTypeTF32AndScaling() {
    #expect(Precision.allCases.map(\.computeType) == [.f32, .f32, .f16, .bf16])
    #expect(Precision.allCases.filter(\.allowsTF32) == [.tf32])
    #expect(Precision.allCases.filter(\.usesLossScaling) == [.fp16])
  }

  @Test func aBackendWithEverythingComputesWhatIsAsked() {
    for p in Precision.allCases {
      let policy = PrecisionPolicy(p, backendName: "gpu", halfPrecisionConvolutions: true, tf32Convolutions: true)
      #expect(policy.effective == p && policy.computeType == p.computeType && policy.note(training: true) == nil)
      #expect(policy.allowsTF32 == (p == .tf32) && policy.usesLossScaling == (p == .fp16))
    }
  }

  @Test func aBackendWithoutHalfOrTF32ComputesInFP32AndSaysSo() throws {
    func cpu(_ p: Precision) -> PrecisionPolicy {
      PrecisionPolicy(p, backendName: "cpu", halfPrecisionConvolutions: false, tf32Convolutions: false)
    }
    #expect(Precision.allCases.map { cpu($0).effective } == [.fp32, .fp32, .fp32, .fp32])
    #expect(cpu(.fp32).note(training: true) == nil)
    // fp16 keeps its loss scaling, so that the scaled path runs (and is tested) on the CPU.
    #expect(cpu(.fp16).usesLossScaling && !cpu(.tf32).allowsTF32)
    let fp16 = try #require(cpu(.fp16).note(training: true))
    #expect(fp16.contains("cpu backend") && fp16.contains("half-precision") && fp16.contains("loss scaling"), "\(fp16)")
    #expect(cpu(.fp16).note(training: false)?.contains("loss scaling") == false)
    #expect(cpu(.tf32).note(training: true)?.contains("TF32") == true)
    #expect(cpu(.bf16).description == "bf16 (computed in fp32)")
  }

  @Test func theReferenceBackendComputesHalfPrecision() {
    let policy = PrecisionPolicy(.fp16, on: ReferenceBackend.shared)
    #expect(policy.computeType == .f16 && policy.note(training: true) == nil)
    // It has no TF32 math: tf32 is computed as plain f32 there.
    #expect(PrecisionPolicy(.tf32, on: ReferenceBackend.shared).effective == .fp32)
  }
}

// MARK: - The model under a policy

@Suite struct MixedPrecisionModelTests {
  static func config() -> UNetConfig {
    var c = UNetConfig()
    (c.baseFilters, c.depth, c.padding, c.inputSize) = (4, 2, .same, 8)
    return c
  }

  /// Every op kind in the graph that produced `t`, with multiplicity.
  static func opKinds(_ t: Tensor) -> [OpKind] {
    var seen = Set<Int>(), stack = [t.node], kinds: [OpKind] = []
    while let n = stack.popLast() {
      guard seen.insert(n.id).inserted else { continue }
      if let op = n.op { kinds.append(op.kind) }
      stack += n.inputs
    }
    return kinds
  }

  static func input() throws -> Tensor {
    try Tensor(randomHost(TensorType([2, 8, 8, 1], .f32), seed: 7), on: ReferenceBackend.shared)
  }

  @Test func fp32AndTF32AddNoCast() throws {
    for p in [Precision.fp32, .tf32] {
      let model = try UNet(config: Self.config(), seed: 1, on: ReferenceBackend.shared)
      model.computeType = PrecisionPolicy(p, on: ReferenceBackend.shared).computeType
      let logits = try model(Self.input(), dropoutSeed: 3)
      #expect(!Self.opKinds(logits).contains(.cast), "\(p)")
    }
    // fp16 asked of a backend computing in f32 adds none either.
    let model = try UNet(config: Self.config(), seed: 1, on: ReferenceBackend.shared)
    model.computeType = PrecisionPolicy(.fp16, backendName: "cpu", halfPrecisionConvolutions: false, tf32Convolutions: false).computeType
    #expect(!Self.opKinds(try model(Self.input())).contains(.cast))
  }

  @Test func halfPrecisionCastsTheInputEveryWeightAndTheLogits() throws {
    let model = try UNet(config: Self.config(), seed: 1, on: ReferenceBackend.shared)
    model.computeType = .f16
    let logits = try model(Self.input())
    #expect(logits.dtype == .f32)
    // One cast per kernel and bias, one for the input, one for the logits.
    #expect(Self.opKinds(logits).filter { $0 == .cast }.count == model.parameters.count + 2)
    // The casts' gradients bring every gradient back to the f32 master weights.
    let grads = try gradients(of: sum(logits), wrt: model.parameters.map(\.value))
    #expect(grads.allSatisfy { $0.dtype == .f32 })
    #expect(try grads.contains { try $0.floats().contains { $0 != 0 } })
  }

  @Test(arguments: [(DType.f16, 1e-2), (.bf16, 6e-2)])
  func halfPrecisionLogitsAreCloseToFP32s(computeType: DType, tolerance: Double) throws {
    let x = try Self.input()
    let model = try UNet(config: Self.config(), seed: 1, on: ReferenceBackend.shared)
    let exact = try model(x).host().doubles
    model.computeType = computeType
    let half = try model(x).host().doubles
    let scale = exact.map(abs).max() ?? 1
    let largest = zip(exact, half).map { abs($0 - $1) }.max() ?? 0
    print("\(computeType) logits: largest difference \(largest) of \(exact.count) logits up to \(scale)")
    #expect(largest <= tolerance * max(scale, 1), "\(computeType): \(largest)")
    #expect(largest > 0, "the \(computeType) path must actually round")
  }
}
