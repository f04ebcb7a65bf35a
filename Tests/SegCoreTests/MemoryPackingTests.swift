@testable import SegCore
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

  /// A kernel's scratch is a buffer live at its instruction alone: it may share bytes with values
  /// dead before or made after, never with the instruction's inputs or outputs, and the plan
  /// names its region by the instruction.
  @Test func aKernelsScratchIsLiveAtItsInstructionAlone() throws {
    // Instruction 1 reads %0 and makes %1; %2 is made at 2 from %1. Its scratch fits where %0
    // was only after 1, so it goes above both.
    let buffers = [
      MemoryPlan.Buffer(slot: 0, start: 0, end: 1, bytes: 256), MemoryPlan.Buffer(slot: 1, start: 1, end: 2, bytes: 256),
      MemoryPlan.Buffer(slot: 2, start: 2, end: 3, bytes: 256), MemoryPlan.Buffer(scratchOf: 1, bytes: 128),
    ]
    let plan = MemoryPlan(packing: buffers)
    try plan.validate()
    let scratch = try #require(plan.scratch[1])
    #expect(plan.scratch.count == 1 && plan.offsets.count == 3 && plan.sizes[-1] == nil)
    for s in [0, 1] { #expect(scratch.offset >= plan.offsets[s]! + 256 || scratch.offset + 128 <= plan.offsets[s]!) }
    #expect(plan.arenaBytes == 640)
    var broken = plan
    broken.buffers[3].offset = plan.offsets[0]!
    #expect(throws: TensorError.self) { try broken.validate() }
  }

  /// A replay beside held values takes the lowest aligned run of free bytes that fits, or none.
  @Test func aWindowIsTheLowestGapThatFits() {
    #expect(ProgramArena.lowestGap(of: 100, in: 1000, around: []) == 0)
    #expect(ProgramArena.lowestGap(of: 100, in: 1000, around: [0..<10]) == 64)
    #expect(ProgramArena.lowestGap(of: 100, in: 1000, around: [600..<700, 0..<64, 150..<200]) == 256)
    #expect(ProgramArena.lowestGap(of: 64, in: 1000, around: [150..<200, 0..<64]) == 64)
    #expect(ProgramArena.lowestGap(of: 500, in: 1000, around: [600..<700, 0..<64]) == 64)
    #expect(ProgramArena.lowestGap(of: 296, in: 1000, around: [0..<64, 300..<700]) == 704)
    #expect(ProgramArena.lowestGap(of: 600, in: 1000, around: [600..<700, 0..<64]) == nil)
  }
}
