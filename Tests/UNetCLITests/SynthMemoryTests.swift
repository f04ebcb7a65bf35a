import Testing

@testable import unet

// MARK: - data synth within the memory there is

@Suite struct SynthMemoryTests {
  @Test func aSetThatCannotFitIsRefusedWithTheEstimateAndTheLargestSizeThatFits() throws {
    // 30 slices of 16384x16384: 2 bytes a pixel kept, plus 24 a pixel while one is made.
    let need = 30 * 16384 * 16384 * 2 + 16384 * 16384 * 24
    let available = 8 << 30
    let refusal = try #require(SynthCommand.memoryRefusal(count: 30, size: 16384, available: available))
    #expect(refusal.contains("--size 16384") && refusal.contains("\(need >> 20) MiB") && refusal.contains("8192 MiB"), "\(refusal)")
    // The largest side that fits: 30 * 2 * s^2 + 24 * s^2 <= 8 GiB, so s = floor(sqrt(8 GiB / 84)) = 10112.
    #expect(refusal.contains("the largest --size that fits is about 10112"), "\(refusal)")
    #expect(SynthCommand.memoryRefusal(count: 30, size: 10112, available: available) == nil)
    #expect(SynthCommand.memoryRefusal(count: 30, size: 10113, available: available) != nil)
    #expect(SynthCommand.memoryRefusal(count: 30, size: 512, available: 1000)?.contains("not even --size 16 fits") == true)
  }
}
