import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Cases

private func t(_ dims: Shape, _ d: DType = .f32) -> TensorType { TensorType(dims, d) }

/// The CUDA backend on the emulator: every kernel but the convolutions (cuDNN, not emulated).
let emulatedBackend: CUDABackend? = (try? HostEmulator.shared.get()).map { CUDABackend(device: $0, convolutions: nil) }

/// Every candidate of the emulated backend's table (`KernelCandidate.all(of:)`).
let emulatedCandidates: [KernelCandidate] = emulatedBackend.map(KernelCandidate.all(of:)) ?? []

/// The cases of the one list (SegCheck's `OpCases.all`) whose kind is one of `candidate`'s primitive
/// type's, at each of the case's dtypes: (case index, dtype).
func cases(of candidate: KernelCandidate) -> [(Int, DType)] {
  OpCases.all.indices.filter { candidate.type.kinds.contains(OpCases.all[$0].kind) }
    .flatMap { i in OpCases.all[i].dtypes.map { (i, $0) } }
}

// MARK: - Tests

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct BackendEmulatorTests {
  static var backend: CUDABackend? { emulatedBackend }

  @Test func everyOpKindButConvolutionsHasAKernelAndACase() throws {
    let b = try #require(Self.backend)
    let convolutions: Set<OpKind> = [.conv2d, .conv2dBackwardData, .conv2dBackwardFilter]
    #expect(Set(b.missingKernels) == convolutions, "without cuDNN only the convolutions are missing")
    #expect(OpCases.missingKinds.isEmpty)
    // One NVRTC candidate per registered type; every case but the convolutions' runs on one.
    for entry in b.kernels.registered { #expect(entry.candidates == ["cuda"], "\(entry.type)") }
    let covered = Set(emulatedCandidates.flatMap(cases(of:)).map { "\($0.0) \($0.1)" })
    for (i, c) in OpCases.all.enumerated() where !c.kind.isConvolution {
      for d in c.dtypes { #expect(covered.contains("\(i) \(d)"), "\(c) at \(d) runs on no candidate") }
    }
  }

  /// Each candidate on its own against the reference, on every case of its type's kinds at each
  /// case's dtypes; half-precision cases against the reference computing in f32. The candidate
  /// must have computed some of them (a case may not reach it: a cast to its own dtype is no op).
  @Test(arguments: emulatedCandidates.indices)
  func candidateMatchesReference(_ index: Int) throws {
    let candidate = emulatedCandidates[index]
    let forced = CandidateBackend(try #require(Self.backend), forcing: candidate)
    for (c, dtype) in cases(of: candidate) { expectConforms(OpCases.all[c], dtype: dtype, on: forced) }
    #expect(forced.accepted > 0 && forced.declined == 0, "\(candidate): accepted \(forced.accepted), declined \(forced.declined)")
  }

  /// Operands a kernel is not instantiated for are declined, so that the table's error names the
  /// candidates, rather than failing inside a launch.
  @Test func kernelsDeclineOperandsTheyAreNotBuiltFor() throws {
    let cuda = try #require(Self.backend)
    let ints = try cuda.upload(HostTensor(type: t([2, 3], .i32), doubles: [1, 2, 3, 4, 5, 6]))
    let operand = Operand(storage: ints, type: t([2, 3], .i32))
    #expect(try cuda.kernels.run(candidate: "cuda", Sum(axes: [0], keepDims: false), [operand], outputs: [t([3], .i32)]) == nil)
    #expect(try cuda.kernels.run(candidate: "cuda", Unary(.exp), [operand], outputs: [t([2, 3], .i32)]) == nil)
    do {
      _ = try cuda.kernels.run(Softmax(log: false), [operand], outputs: [t([2, 3], .i32)])
      Issue.record("softmax of i32 ran")
    } catch let e as TensorError {
      #expect(e.description.contains("(cuda) declined"), "\(e)")
    }
    let f64 = try cuda.upload(HostTensor(type: t([4], .f64), doubles: [1, 2, 3, 4]))
    let state = try cuda.upload(HostTensor(type: t([4]), doubles: [0, 0, 0, 0]))
    let adam = AdamUpdate(AdamConstants(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, stepSize: 1e-3))
    let inputs = [state, state, state].map { Operand(storage: $0, type: t([4])) } + [Operand(storage: f64, type: t([4], .f64))]
    #expect(try cuda.kernels.run(candidate: "cuda", adam, inputs, outputs: Array(repeating: t([4]), count: 3)) == nil)
  }

  /// The fused Adam kernel gives AdamUpdate's reference kernel bit for bit (both round each f32
  /// product and sum in the documented order; the emulator is built without contraction), for
  /// gradients in f32, f16 and bf16.
  @Test(arguments: [DType.f32, .f16, .bf16])
  func fusedAdamEqualsTheReferenceKernel(_ gradientType: DType) throws {
    let cuda = try #require(Self.backend)
    let fused = try #require(KernelCandidate.all(of: cuda).first { ObjectIdentifier($0.type) == ObjectIdentifier(AdamUpdate.self) })
    #expect(fused.name == "cuda")
    let forced = CandidateBackend(cuda, forcing: fused)
    let shape: Shape = [7, 43]
    let hosts = [
      randomHost(t(shape), seed: 31), randomHost(t(shape), seed: 32, in: -0.1..<0.1),
      randomHost(t(shape), seed: 33, in: 0..<0.01), randomHost(t(shape, gradientType), seed: 34),
    ]
    let op = AdamUpdate(AdamConstants(beta1: 0.9, beta2: 0.999, epsilon: 1e-7, stepSize: 0.05))
    let expected = try op.referenceOutputs(hosts, outputs: op.outputTypes(hosts.map(\.type)))
    let x = try hosts.map { try Tensor($0, on: forced) }
    let got = try adamUpdate(parameter: x[0], m: x[1], v: x[2], gradient: x[3], op.constants)
    #expect(forced.accepted == 1)
    for (name, a, e) in zip3(["parameter", "m", "v"], [got.parameter, got.m, got.v], expected) {
      let computed: [Float] = try a.host().floats, reference: [Float] = e.floats
      #expect(computed.map(\.bitPattern) == reference.map(\.bitPattern), "\(name), gradient \(gradientType)")
    }
  }

  /// Long reductions whose reduced axes are not the rows in front of the kept ones take several
  /// partial passes (chunks of chunks); a small output and a full reduction of rows (one
  /// `sumRows` launch) agree with the reference too.
  @Test func longSumsTakeSeveralPasses() throws {
    let cuda = try #require(Self.backend)
    for (shape, axes) in [([5_000, 3, 2], [0, 2]), ([5_000, 3], [0]), ([5_000, 3], [0, 1])] {
      let x = randomHost(t(Shape(shape)), seed: 8)
      let a = try sum(Tensor(x, on: cuda), axes: axes).host().doubles
      let r = try sum(Tensor(x, on: ReferenceBackend.shared), axes: axes).host().doubles
      let worst = zip(a, r).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
      #expect(worst < 1e-5, "\(shape) axes \(axes): \(a) vs \(r)")
    }
  }

  /// Exact where the reference is exact: masks, casts, argmax, one-hot and pooling pick values.
  @Test func exactOpsAreBitForBit() throws {
    let cuda = try #require(Self.backend)
    let x = randomHost(t([3, 5, 7, 4]), seed: 5, in: -3..<3)
    for backend in [cuda as any Backend] {
      let a = try Tensor(x, on: backend), r = try Tensor(x, on: ReferenceBackend.shared)
      for d in DType.allCases where d != .f32 {
        #expect(try cast(a, to: d).host().doubles == cast(r, to: d).host().doubles, "cast to \(d)")
      }
      #expect(try argmax(a, axis: 2).host().doubles == argmax(r, axis: 2).host().doubles)
      #expect(try maxPool2d(a).host().doubles == maxPool2d(r).host().doubles)
      for d in [DType.f16, .bf16, .f64] {
        let m = try randomMask(shape: [1000], keepProbability: 0.55, seed: 3, offset: 7, dtype: d, on: backend)
        let e = try randomMask(shape: [1000], keepProbability: 0.55, seed: 3, offset: 7, dtype: d, on: ReferenceBackend.shared)
        #expect(try m.host().doubles == e.host().doubles, "randomMask \(d)")
      }
    }
  }

  /// NaN rules: argmax and max pooling let the first NaN win, relu passes NaN through.
  @Test func nanRulesMatchTheReference() throws {
    let cuda = try #require(Self.backend)
    let values: [Float] = [1, .nan, 3, 2, 5, 5, .nan, 0]
    for backend in [cuda as any Backend, ReferenceBackend.shared] {
      let x = try Tensor(shape: [2, 4], floats: values, on: backend)
      #expect(try argmax(x).host().floats == [1, 2])
      let p = try maxPool2d(reshape(x, [1, 2, 4, 1]), window: (2, 2), strides: (2, 2)).host().floats
      #expect(p[0].isNaN && p[1].isNaN)
      #expect(try relu(x).host().floats[1].isNaN)
    }
  }

  /// A bad label fails with the reference's message, naming the first one.
  @Test func oneHotNamesTheFirstBadLabel() throws {
    let cuda = try #require(Self.backend)
    let labels = HostTensor(type: TensorType([6], .i32), doubles: [0, 1, 7, 2, -1, 9])
    var messages: [String] = []
    for backend in [cuda as any Backend, ReferenceBackend.shared] {
      do {
        _ = try oneHot(Tensor(labels, on: backend), classes: 3)
        Issue.record("a bad label passed on \(backend.name)")
      } catch let e as TensorError {
        messages.append(e.description)
      }
    }
    #expect(messages.count == 2 && messages[0] == messages[1])
    #expect(messages.first?.contains("label 7 at index 2") == true)
  }

  /// The sum's chunks are added in a fixed order: the same input gives the same bits every time.
  @Test func sumIsDeterministic() throws {
    let cuda = try #require(Self.backend)
    let x = try Tensor(randomHost(t([4, 1000, 3]), seed: 11), on: cuda)
    let a = try sum(x, axes: [0, 1]).host().floats
    let b = try sum(x, axes: [0, 1]).host().floats
    #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
  }

  /// Every buffer the backend allocates, scratch included, is freed with its tensors; the
  /// backend's own (the one-launch sums' counters) with the backend.
  @Test func buffersAreFreed() throws {
    let emulator = try HostEmulator()
    do {
      let backend = CUDABackend(device: emulator, convolutions: nil)
      do {
        let x = try Tensor(randomHost(t([2, 6, 4, 3]), seed: 1), on: backend)
        let labels = try Tensor(HostTensor(type: TensorType([2, 6, 4], .i32), doubles: Array(repeating: 1, count: 48)), on: backend)
        let y = try sum(softmax(x) * oneHot(labels, classes: 3), axes: [0, 1, 2])
        _ = try gradients(of: y, wrt: [x], seed: Tensor(randomHost(y.type, seed: 2), on: backend))
        #expect(emulator.liveAllocations > 1)
      }
      #expect(backend.reductionCounters.allocated && emulator.liveAllocations == 1)
    }
    #expect(emulator.liveAllocations == 0)
  }
}

/// The elements of three sequences side by side.
private func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] { zip(a, zip(b, c)).map { ($0, $1.0, $1.1) } }
