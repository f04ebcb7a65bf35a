@testable import SegCore
import SegNN
import SegTestSupport
import Testing

// MARK: - A training step builds only the gradients the weights need

@Suite struct TrainingStepGradientTests {
  /// A depth-2 U-Net with 4 base filters (valid: 44 -> 4 pixels; same: 16 -> 16).
  private func tinyConfig(_ padding: UNetConfig.Padding) -> UNetConfig {
    var c = UNetConfig()
    c.depth = 2
    c.baseFilters = 4
    c.padding = padding
    c.inputSize = padding == .same ? 16 : 44
    return c
  }

  /// The loss's gradients with respect to every parameter (the trainer's backward pass, dropout on),
  /// with the ops it ran (forward and backward) counted by kind.
  private func step(
    _ model: UNet, images: Tensor, targets: Tensor
  ) throws -> (gradients: [[Float]], calls: [OpKind: Int]) {
    let profiler = OpProfiler()
    let grads = try OpProfiler.record(into: profiler) {
      let logits = try model(images, dropoutSeed: 7)
      let loss = try segmentationLoss(logits: logits, targets: targets).total
      return try gradients(of: loss, wrt: model.parameters.map(\.value))
    }
    let calls = Dictionary(uniqueKeysWithValues: profiler.ranked.map { ($0.kind, $0.entry.calls) })
    return (try grads.map { try $0.floats() }, calls)
  }

  @Test(arguments: UNetConfig.Padding.allCases)
  func theImageGetsNoBackwardDataConvAndTheWeightsTheSameGradients(_ padding: UNetConfig.Padding) throws {
    let c = tinyConfig(padding)
    let backend = ReferenceBackend.shared
    let model = try UNet(config: c, seed: 2, on: backend)
    let images = try Tensor(randomHost(TensorType([2, c.inputSize, c.inputSize, 1], .f32), seed: 3), on: backend)
    var labels = [Float](repeating: 0, count: 2 * c.outputSize * c.outputSize * 2)
    for p in 0..<(labels.count / 2) { labels[2 * p + (p % 3 == 0 ? 0 : 1)] = 1 }
    let targets = try Tensor(shape: [2, c.outputSize, c.outputSize, 2], floats: labels, on: backend)

    let now = try step(model, images: images, targets: targets)
    let before = try GradientWalk.$buildsEveryCotangent.withValue(true) {
      try step(model, images: images, targets: targets)
    }

    // Forward: one backward-data conv per transposed conv. Backward, with every input cotangent
    // built: one per conv (its input's cotangent). The first conv's input is the image.
    let convs = 2 * c.depth + 2 + 2 * c.depth + 1, upconvs = c.depth
    #expect(before.calls[.conv2dBackwardData] == convs + upconvs)
    #expect(now.calls[.conv2dBackwardData] == convs + upconvs - 1)
    // Every weight still gets its gradient, bit for bit.
    #expect(now.calls[.conv2dBackwardFilter] == convs + upconvs)
    #expect(now.gradients.count == model.parameters.count)
    for (i, (a, b)) in zip(now.gradients, before.gradients).enumerated() {
      #expect(a == b, "\(model.parameters[i].name): the gradient differs from the all-needed walk's")
    }
    // No kind runs more often; the image's, the dropout mask's and the targets' cotangents are gone.
    for (kind, n) in now.calls {
      #expect(n <= before.calls[kind] ?? 0, "\(kind): \(n) calls, \(before.calls[kind] ?? 0) before")
    }
    #expect(now.calls.values.reduce(0, +) < before.calls.values.reduce(0, +))
  }
}
