import Foundation
import SegCore
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Cases

private func t(_ dims: Shape, _ d: DType = .f32) -> TensorType { TensorType(dims, d) }
private let half = (atol: 2e-3, rtol: 2e-3), brain = (atol: 2e-2, rtol: 2e-2), double = (atol: 1e-12, rtol: 1e-12)

/// Every op kind but the convolutions (cuDNN, not emulated), in every floating dtype somewhere,
/// with odd sizes, broadcasting, long reductions and ties.
let cudaCases: [OpCase] = [
  OpCase(kind: .add, label: "bias broadcast", inputs: [t([2, 3, 4, 5]), t([5])]) { x, _ in try x[0] + x[1] },
  OpCase(kind: .add, label: "both broadcast, f16", inputs: [t([3, 1, 4], .f16), t([5, 1], .f16)], tolerance: half) { x, _ in try x[0] + x[1] },
  OpCase(kind: .sub, label: "middle broadcast", inputs: [t([2, 3, 4]), t([3, 1])]) { x, _ in try x[0] - x[1] },
  OpCase(kind: .mul, label: "same shape, bf16", inputs: [t([13, 5, 3], .bf16), t([13, 5, 3], .bf16)], tolerance: brain) { x, _ in try x[0] * x[1] },
  OpCase(kind: .div, label: "scalar divisor, f64", inputs: [t([7, 3], .f64), t([], .f64)], range: 0.5..<2, tolerance: double) { x, _ in try x[0] / x[1] },
  OpCase(kind: .neg, label: "", inputs: [t([7])]) { x, _ in try neg(x[0]) },
  OpCase(kind: .exp, label: "", inputs: [t([3, 5])]) { x, _ in try exp(x[0]) },
  OpCase(kind: .exp, label: "f16", inputs: [t([3, 5], .f16)], tolerance: half) { x, _ in try exp(x[0]) },
  OpCase(kind: .log, label: "", inputs: [t([3, 5])], range: 0.1..<3) { x, _ in try log(x[0]) },
  OpCase(kind: .sqrt, label: "f64", inputs: [t([3, 5], .f64)], range: 0.1..<3, tolerance: double) { x, _ in try sqrt(x[0]) },
  OpCase(kind: .addScalar, label: "", inputs: [t([4, 3])]) { x, _ in try x[0] + 0.25 },
  OpCase(kind: .mulScalar, label: "bf16", inputs: [t([4, 3], .bf16)], tolerance: brain) { x, _ in try x[0] * -3 },
  OpCase(kind: .relu, label: "", inputs: [t([2, 3, 5, 7])]) { x, _ in try relu(x[0]) },
  OpCase(kind: .reluBackward, label: "", inputs: [t([2, 3, 4]), t([2, 3, 4])], differentiable: [true, false]) { x, _ in
    try reluBackward(x[0], x[1])
  },
  OpCase(kind: .sum, label: "all", inputs: [t([2, 5, 3, 4])]) { x, _ in try sum(x[0]) },
  OpCase(kind: .sum, label: "N,H,W (bias gradient), long", inputs: [t([3, 20, 17, 4])]) { x, _ in try sum(x[0], axes: [0, 1, 2]) },
  OpCase(kind: .sum, label: "H,W keepDims", inputs: [t([2, 5, 3, 4])]) { x, _ in try sum(x[0], axes: [1, 2], keepDims: true) },
  OpCase(kind: .sum, label: "axes 0 and 2", inputs: [t([3, 4, 5, 2])]) { x, _ in try sum(x[0], axes: [0, 2]) },
  OpCase(kind: .sum, label: "last axis, f16", inputs: [t([6, 70], .f16)], tolerance: (2e-2, 2e-2)) { x, _ in try sum(x[0], axes: [-1]) },
  OpCase(kind: .sum, label: "f64", inputs: [t([4, 33, 2], .f64)], tolerance: double) { x, _ in try sum(x[0], axes: [1]) },
  OpCase(kind: .broadcastTo, label: "", inputs: [t([3, 1])]) { x, _ in try broadcast(x[0], to: [2, 3, 4]) },
  OpCase(kind: .softmax, label: "", inputs: [t([2, 3, 2, 5])], range: -4..<4) { x, _ in try softmax(x[0]) },
  OpCase(kind: .softmax, label: "bf16, 2 classes", inputs: [t([2, 9, 2], .bf16)], range: -4..<4, tolerance: brain) { x, _ in try softmax(x[0]) },
  OpCase(kind: .logSoftmax, label: "", inputs: [t([2, 3, 2, 5])], range: -4..<4) { x, _ in try logSoftmax(x[0]) },
  OpCase(kind: .logSoftmax, label: "large logits, f64", inputs: [t([5, 3], .f64)], range: 500..<900, tolerance: double) { x, _ in
    try logSoftmax(x[0])
  },
  OpCase(kind: .reshape, label: "", inputs: [t([2, 3, 4])]) { x, _ in try reshape(x[0], [4, 6]) },
  OpCase(kind: .concat, label: "channels", inputs: [t([2, 3, 3, 2]), t([2, 3, 3, 5])]) { x, _ in try concat([x[0], x[1]]) },
  OpCase(kind: .concat, label: "axis 1, three inputs, f16", inputs: [t([2, 1, 3], .f16), t([2, 4, 3], .f16), t([2, 2, 3], .f16)], tolerance: half) { x, _ in
    try concat([x[0], x[1], x[2]], axis: 1)
  },
  OpCase(kind: .slice, label: "centre crop", inputs: [t([2, 9, 8, 3])]) { x, _ in try centerCrop(x[0], height: 5, width: 4) },
  OpCase(kind: .pad, label: "zero", inputs: [t([2, 3, 4, 2])]) { x, _ in try pad(x[0], before: [0, 1, 2, 0], after: [0, 2, 0, 0]) },
  OpCase(kind: .pad, label: "reflect", inputs: [t([1, 4, 5, 2])]) { x, _ in
    try pad(x[0], before: [0, 2, 3, 0], after: [0, 3, 1, 0], mode: .reflect)
  },
  OpCase(kind: .padBackward, label: "reflect adjoint", inputs: [t([1, 9, 9, 2])]) { x, _ in
    try padBackward(x[0], before: [0, 2, 3, 0], after: [0, 3, 1, 0])
  },
  OpCase(kind: .padBackward, label: "every axis, bf16", inputs: [t([7, 6, 7], .bf16)], tolerance: brain) { x, _ in
    try padBackward(x[0], before: [1, 2, 0], after: [2, 1, 3])
  },
  OpCase(kind: .randomMask, label: "keep 0.7", inputs: []) { _, backend in
    try randomMask(shape: [2, 5, 7, 3], keepProbability: 0.7, seed: 42, offset: 9, on: backend)
  },
  OpCase(kind: .randomMask, label: "keep 0.3, bf16", inputs: []) { _, backend in
    try randomMask(shape: [300], keepProbability: 0.3, seed: 1, offset: 1 << 40, dtype: .bf16, on: backend)
  },
  OpCase(kind: .cast, label: "f32 to bf16 and back", inputs: [t([3, 7])]) { x, _ in try cast(cast(x[0], to: .bf16), to: .f32) },
  OpCase(kind: .cast, label: "f32 to i32", inputs: [t([3, 7])], range: -50..<50) { x, _ in try cast(x[0], to: .i32) },
  OpCase(kind: .cast, label: "f64 to u8, wrapping", inputs: [t([40], .f64)], range: -600..<600) { x, _ in try cast(x[0], to: .u8) },
  OpCase(kind: .cast, label: "f16 to f64", inputs: [t([9], .f16)], range: -60_000..<60_000) { x, _ in try cast(x[0], to: .f64) },
  OpCase(kind: .argmax, label: "channels", inputs: [t([2, 3, 4, 5])]) { x, _ in try argmax(x[0]) },
  OpCase(kind: .argmax, label: "middle axis, ties", inputs: [t([3, 6, 4])], range: -2..<2) { x, _ in
    try argmax(cast(cast(x[0], to: .i32), to: .f32), axis: 1)
  },
  OpCase(kind: .oneHot, label: "from argmax", inputs: [t([2, 3, 3, 4])]) { x, _ in try oneHot(argmax(x[0]), classes: 4) },
  OpCase(kind: .oneHot, label: "u8 labels to f16", inputs: [t([10])], range: 0..<3) { x, _ in
    try oneHot(cast(x[0], to: .u8), classes: 3, dtype: .f16)
  },
  OpCase(kind: .maxPool2d, label: "2x2 stride 2, odd size", inputs: [t([2, 7, 5, 3])]) { x, _ in try maxPool2d(x[0]) },
  OpCase(kind: .maxPool2d, label: "3x3 stride 2 overlapping, ties, f16", inputs: [t([1, 7, 9, 2], .f16)], range: -2..<2, tolerance: half) { x, _ in
    try maxPool2d(cast(cast(x[0], to: .i32), to: .f16), window: (3, 3), strides: (2, 2))
  },
  OpCase(kind: .maxPool2dBackward, label: "2x2", inputs: [t([2, 6, 4, 3]), t([2, 3, 2, 3])], differentiable: [false, false]) { x, _ in
    try maxPool2dBackward(x[0], x[1])
  },
  OpCase(kind: .maxPool2dBackward, label: "3x3 stride 1, f64", inputs: [t([1, 5, 6, 2], .f64), t([1, 3, 4, 2], .f64)], differentiable: [false, false], tolerance: double) { x, _ in
    try maxPool2dBackward(x[0], x[1], window: (3, 3), strides: (1, 1))
  },
]

// MARK: - Tests

@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct BackendEmulatorTests {
  static let backend: CUDABackend? = (try? HostEmulator.shared.get()).map { CUDABackend(device: $0, convolutions: nil) }

  @Test func everyOpKindButConvolutionsHasAKernelAndACase() throws {
    let b = try #require(Self.backend)
    let convolutions: Set<OpKind> = [.conv2d, .conv2dBackwardData, .conv2dBackwardFilter]
    #expect(Set(b.missingKernels) == convolutions, "without cuDNN only the convolutions are missing")
    let covered = Set(cudaCases.map(\.kind))
    #expect(OpKind.allCases.filter { !covered.contains($0) && !convolutions.contains($0) }.isEmpty)
  }

  @Test(arguments: cudaCases.indices)
  func cudaMatchesReference(_ index: Int) throws {
    try cudaCases[index].expectMatchesReference(on: try #require(Self.backend), index: index)
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
