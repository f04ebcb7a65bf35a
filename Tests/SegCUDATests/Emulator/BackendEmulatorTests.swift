import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Cases

private func t(_ dims: Shape, _ d: DType = .f32) -> TensorType { TensorType(dims, d) }

/// Every case of the one list (SegCheck's `OpCases.all`) but the convolutions (cuDNN, not
/// emulated), at each of its dtypes: (case index, dtype).
let emulatedCases: [(Int, DType)] = OpCases.all.indices.filter { !OpCases.all[$0].kind.isConvolution }
  .flatMap { i in OpCases.all[i].dtypes.map { (i, $0) } }

// MARK: - Tests

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct BackendEmulatorTests {
  static let backend: CUDABackend? = (try? HostEmulator.shared.get()).map { CUDABackend(device: $0, convolutions: nil) }

  @Test func everyOpKindButConvolutionsHasAKernelAndACase() throws {
    let b = try #require(Self.backend)
    let convolutions: Set<OpKind> = [.conv2d, .conv2dBackwardData, .conv2dBackwardFilter]
    #expect(Set(b.missingKernels) == convolutions, "without cuDNN only the convolutions are missing")
    #expect(OpCases.missingKinds.isEmpty)
  }

  /// Against the reference; half-precision cases against the reference computing in f32.
  @Test(arguments: emulatedCases.indices)
  func cudaMatchesReference(_ index: Int) throws {
    let (c, dtype) = emulatedCases[index]
    expectConforms(OpCases.all[c], dtype: dtype, on: try #require(Self.backend))
  }

  /// Long reductions take several partial passes (chunks of chunks); a small output (a bias
  /// gradient) and a full reduction agree with the reference.
  @Test func longSumsTakeSeveralPasses() throws {
    let cuda = try #require(Self.backend)
    let x = randomHost(t([5_000, 3]), seed: 8)
    for axes in [[0], [0, 1]] {
      let a = try sum(Tensor(x, on: cuda), axes: axes).host().doubles
      let r = try sum(Tensor(x, on: ReferenceBackend.shared), axes: axes).host().doubles
      let worst = zip(a, r).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 0
      #expect(worst < 1e-5, "axes \(axes): \(a) vs \(r)")
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

  /// Every buffer the backend allocates, scratch included, is freed with its tensors.
  @Test func buffersAreFreed() throws {
    let emulator = try HostEmulator()
    let backend = CUDABackend(device: emulator, convolutions: nil)
    do {
      let x = try Tensor(randomHost(t([2, 6, 4, 3]), seed: 1), on: backend)
      let labels = try Tensor(HostTensor(type: TensorType([2, 6, 4], .i32), doubles: Array(repeating: 1, count: 48)), on: backend)
      let y = try sum(softmax(x) * oneHot(labels, classes: 3), axes: [0, 1, 2])
      _ = try gradients(of: y, wrt: [x], seed: Tensor(randomHost(y.type, seed: 2), on: backend))
      #expect(emulator.liveAllocations > 0)
    }
    #expect(emulator.liveAllocations == 0)
  }
}
