import SegCore
import Testing

// MARK: - Packing ways

@Suite struct MemoryPackingTests {
  /// Every way of packing is sound on its own, and the plan keeps the smallest arena of them.
  @Test(arguments: 0..<12 as Range<UInt64>) func theSmallestSoundPackingIsKept(seed: UInt64) throws {
    var rng = SplitMix64(seed: seed)
    let buffers = (0..<150).map { i -> MemoryPlan.Buffer in
      let start = Int(rng.next() % 80)
      let bytes = MemoryPlan.alignment * Int(1 + rng.next() % (rng.next() % 2 == 0 ? 8 : 256))
      return MemoryPlan.Buffer(slot: i, start: start, end: start + Int(rng.next() % 40), bytes: bytes)
    }
    var arenas: [Int] = []
    for way in MemoryPlan.Packing.allCases {
      let plan = MemoryPlan(packing: buffers, ways: [way])
      try plan.validate()
      #expect(plan.arenaBytes >= plan.peakLiveBytes)
      arenas.append(plan.arenaBytes)
    }
    let plan = MemoryPlan(packing: buffers)
    try plan.validate()
    #expect(plan.arenaBytes == arenas.min())
  }

  /// Best fit puts a buffer in the smallest gap that takes it, where first fit takes the lowest.
  @Test func bestFitTakesTheSmallestGap() throws {
    // At instruction 5 two short-lived buffers have gone: a 512-byte gap low and a 128-byte one
    // higher up, between buffers that live on; the last buffer (64 bytes) fits both.
    let buffers = [
      MemoryPlan.Buffer(slot: 0, start: 0, end: 9, bytes: 1024), MemoryPlan.Buffer(slot: 1, start: 0, end: 4, bytes: 512),
      MemoryPlan.Buffer(slot: 2, start: 0, end: 9, bytes: 384), MemoryPlan.Buffer(slot: 3, start: 0, end: 4, bytes: 128),
      MemoryPlan.Buffer(slot: 4, start: 0, end: 9, bytes: 64), MemoryPlan.Buffer(slot: 5, start: 5, end: 9, bytes: 64),
    ]
    let first = MemoryPlan(packing: buffers, ways: [.sizeFirstFit]), best = MemoryPlan(packing: buffers, ways: [.sizeBestFit])
    try first.validate()
    try best.validate()
    #expect(first.offsets[5] == first.offsets[1])
    #expect(best.offsets[5] == best.offsets[3])
  }
}
