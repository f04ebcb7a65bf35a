import SegCore
import Testing

// MARK: - SplitMix64

/// The one SplitMix64 gives the published stream, and its draws turn bits into numbers as the
/// copies it replaced did (values computed independently, in Python, from the formulas).
@Suite struct SplitMix64Tests {
  @Test func seedZeroGivesThePublishedStream() {
    var rng = SplitMix64(seed: 0)
    #expect((0..<3).map { _ in rng.next() } == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
  }

  @Test func theMaskHashIsTheFinaliserOfACounter() {
    #expect(SplitMix64.finalize(0) == 0)
    for x: UInt64 in [0, 1, 42, 1 << 63, .max] {
      var rng = SplitMix64(seed: x)
      #expect(SplitMix64.finalize(x &+ SplitMix64.increment) == rng.next())
      #expect(RandomMask.bits(seed: x, counter: 3) == SplitMix64.finalize(x ^ (3 &* SplitMix64.increment)) >> 40)
    }
  }

  @Test func drawsUseTheTopBits() {
    var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42), c = SplitMix64(seed: 42), d = SplitMix64(seed: 42)
    #expect((0..<3).map { _ in a.nextUnit() } == [0.7415648787718233, 0.1599103928769201, 0.27860113025513866])
    #expect((0..<3).map { _ in b.nextUnitFloat() } == [0.7415648698806763, 0.1599103808403015, 0.27860110998153687])
    #expect(c.nextInt(10) == Int(d.next() % 10))
  }
}
