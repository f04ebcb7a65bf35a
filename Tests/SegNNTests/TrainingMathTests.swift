import Foundation
import SegCore
import SegNN
import SegTestSupport
import Testing

// MARK: - Loss and optimizer formulas

@Suite struct LossTests {
  @Test func uniformLogitsGiveLog2AndTheDiceFormula() throws {
    // Zero logits: p = 0.5 everywhere. One image 1x2, targets class 1 then class 0.
    let logits = try Tensor(repeating: 0, shape: [1, 1, 2, 2])
    let targets = try Tensor(shape: [1, 1, 2, 2], floats: [0, 1, 1, 0])
    let loss = try segmentationLoss(logits: logits, targets: targets)
    #expect(abs(try loss.crossEntropy.item() - Foundation.log(2)) < 1e-6)
    // Per class: (2 * 0.5 + 1e-6) / (0.25 + 0.25 + 1 + 1e-6).
    let dice = (1 + 1e-6) / (1.5 + 1e-6)
    #expect(abs(try loss.dice.item() - (1 - dice)) < 1e-6)
  }

  @Test func mismatchedTargetsAreRejected() throws {
    let logits = try Tensor(repeating: 0, shape: [1, 2, 2, 2])
    let targets = try Tensor(repeating: 0, shape: [1, 2, 2, 3])
    #expect { try segmentationLoss(logits: logits, targets: targets) } throws: { "\($0)".contains("segmentationLoss") }
  }
}

@Suite struct AdamTests {
  @Test func twoStepsMatchKerasFormula() throws {
    let p = Parameter("w", try Tensor(shape: [2], floats: [1, -2]))
    let adam = Adam(learningRate: 0.1)
    var w = [1.0, -2.0], m = [0.0, 0.0], v = [0.0, 0.0]
    for (t, g) in [[0.5, -1.0], [0.25, 2.0]].enumerated() {
      try adam.update([p], gradients: [Tensor(shape: [2], floats: g.map(Float.init))])
      let step = 0.1 * (1 - pow(0.999, Double(t + 1))).squareRoot() / (1 - pow(0.9, Double(t + 1)))
      for i in 0..<2 {
        m[i] = 0.9 * m[i] + 0.1 * g[i]
        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
        w[i] -= step * m[i] / (v[i].squareRoot() + 1e-7)
      }
    }
    let got = try p.value.floats()
    for i in 0..<2 { #expect(abs(Double(got[i]) - w[i]) < 1e-5) }
    #expect(adam.step == 2)
  }
}

// MARK: - The whole model

@Suite struct UNetModelTests {
  func tinyConfig(_ padding: UNetConfig.Padding) -> UNetConfig {
    var c = UNetConfig()
    c.baseFilters = 2
    c.depth = 1
    c.padding = padding
    c.inputSize = padding == .same ? 4 : 18
    c.upconvKernel = 2
    return c
  }

  @Test(arguments: [UNetConfig.Padding.valid, .same])
  func shapesAndParameterCount(_ padding: UNetConfig.Padding) throws {
    var c = tinyConfig(padding)
    c.depth = 2
    c.inputSize = padding == .same ? 8 : 44
    c.upconvKernel = 3
    let model = try UNet(config: c, seed: 1, on: ReferenceBackend.shared)
    #expect(model.parameterCount == c.parameterCount)
    let y = try model(Tensor(repeating: 0.5, shape: [2, c.inputSize, c.inputSize, 1]))
    #expect(y.shape == [2, c.outputSize, c.outputSize, 2])
  }

  @Test func lossGradientMatchesFiniteDifferences() throws {
    let c = tinyConfig(.valid)
    let model = try UNet(config: c, seed: 3, dtype: .f64, on: ReferenceBackend.shared)
    let params = model.parameters
    // Non-zero biases: with zero biases, pixels whose receptive field dropout zeroed sit exactly on
    // ReLU's kink, where finite differences are meaningless.
    for (i, p) in params.enumerated() where p.name.hasSuffix(".bias") {
      p.value = try Tensor(randomHost(p.value.type, seed: UInt64(40 + i), in: 0.05..<0.2), on: ReferenceBackend.shared)
    }
    let image = randomHost(TensorType([2, c.inputSize, c.inputSize, 1], .f64), seed: 5)
    var labels = [Double](repeating: 0, count: 2 * c.outputSize * c.outputSize * 2)
    for p in 0..<(labels.count / 2) { labels[2 * p + (p % 3 == 0 ? 0 : 1)] = 1 }
    let x = try Tensor(image, on: ReferenceBackend.shared)
    let t = try Tensor(HostTensor(type: TensorType([2, c.outputSize, c.outputSize, 2], .f64), doubles: labels), on: ReferenceBackend.shared)
    try checkVJP("U-Net loss", inputs: try params.map { try $0.value.host() }, eps: 1e-5, tolerance: 1e-5) { xs in
      for (p, v) in zip(params, xs) { p.value = v }
      let parts = try segmentationLoss(logits: model(x, dropoutSeed: 11), targets: t)
      return try parts.total + l2Penalty(xs, weightDecay: 5e-4)
    }
  }
}
