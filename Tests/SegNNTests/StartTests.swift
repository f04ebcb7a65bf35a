import Foundation
import SegCore
import SegNN
import Testing

// MARK: - How a fresh U-Net starts

@Suite struct StartTests {
  let config: UNetConfig = {
    var c = UNetConfig()
    (c.baseFilters, c.depth, c.padding, c.inputSize) = (4, 2, .same, 16)
    return c
  }()

  @Test func heNormalHasTheVarianceOfItsFanIn() throws {
    let values = heNormal(shape: [3, 3, 64, 64], fanIn: 576, seed: 1, stream: 2).floats.map(Double.init)
    let mean = values.reduce(0, +) / Double(values.count)
    let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
    #expect(abs(mean) < 0.002)
    #expect(abs(variance / (2.0 / 576) - 1) < 0.03, "variance \(variance), expected \(2.0 / 576)")
    #expect(heNormal(shape: [4], fanIn: 9, seed: 1, stream: 2).floats == heNormal(shape: [4], fanIn: 9, seed: 1, stream: 2).floats)
  }

  @Test func heKeepsTheLogitsAwayFromZeroWhereGlorotShrinksThem() throws {
    var deep = config
    (deep.depth, deep.inputSize, deep.baseFilters) = (4, 32, 8)
    let x = try Tensor(shape: [1, 32, 32, 1], floats: (0..<1024).map { Float(sin(Double($0) * 0.37)) }, on: ReferenceBackend.shared)
    func logitScale(_ initializer: WeightInitializer) throws -> Double {
      let logits = try UNet(config: deep, seed: 3, initializer: initializer, on: ReferenceBackend.shared)(x).host().floats
      return (logits.map { Double($0 * $0) }.reduce(0, +) / Double(logits.count)).squareRoot()
    }
    let glorot = try logitScale(.glorot), he = try logitScale(.he)
    #expect(he > 2 * glorot, "RMS logit: He \(he), Glorot \(glorot)")
  }

  @Test func theHeadBiasAtThePriorPredictsThePriorBeforeAnyTraining() throws {
    let model = try UNet(config: config, seed: 0, on: ReferenceBackend.shared)
    // With every kernel at zero, the logits are the head's bias alone.
    for p in model.parameters where p.name.hasSuffix(".kernel") {
      p.value = try Tensor(repeating: 0, shape: p.value.shape, dtype: p.value.dtype, on: ReferenceBackend.shared)
    }
    try model.setHeadBias(classPrior: [0.8, 0.2])
    let x = try Tensor(repeating: 0.5, shape: [1, 16, 16, 1], dtype: .f32, on: ReferenceBackend.shared)
    let p = try softmax(model(x)).host().floats
    #expect(abs(Double(p[0]) - 0.8) < 1e-6 && abs(Double(p[1]) - 0.2) < 1e-6)
    #expect(throws: SettingError.self) { try model.setHeadBias(classPrior: [1, 0]) }
    #expect(throws: SettingError.self) { try model.setHeadBias(classPrior: [0.5, 0.3, 0.2]) }
  }

  @Test func glorotRemainsTheLibraryDefault() throws {
    let a = try UNet(config: config, seed: 5, on: ReferenceBackend.shared)
    let b = try UNet(config: config, seed: 5, initializer: .glorot, on: ReferenceBackend.shared)
    for (p, q) in zip(a.parameters, b.parameters) { #expect(try p.value.host().floats == q.value.host().floats) }
  }
}
