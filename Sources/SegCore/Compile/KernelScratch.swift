// MARK: - Kernel scratch

/// The scratch memory of the kernel running now: the buffers it makes for itself and lets go
/// before it returns (Winograd's transformed tiles and filters). A compiled program learns at its
/// first run how many bytes each kernel asks for (`Program.Instruction.scratchBytes`), and the
/// memory plan gives them a region of the arena live at that instruction alone, so that a replay
/// takes them there instead of from the allocator, whose fresh pages a 572x572 training step
/// faulted in by the hundred megabytes. A kernel asks through `current` on the thread it was
/// called on, before it hands work to other threads; requests are served in order, each rounded
/// up to `MemoryPlan.alignment`, until the region is used up, and then answered nil: the kernel
/// allocates, as it always may. Without a region (the first run) the requests are only counted.
public final class KernelScratch: @unchecked Sendable {
  /// The scratch of the kernel running now on this task, when its caller planned or counts it.
  @TaskLocal public static var current: KernelScratch?

  /// The region requests are served from (nil: counted only).
  private let region: OutputPlacement.Region?
  private var used = 0
  private let lock = Lock()

  /// Scratch served from `region`, or, when nil, requests counted and all answered nil.
  public init(_ region: OutputPlacement.Region?) { self.region = region }

  /// Bytes asked for so far, each request rounded up to `MemoryPlan.alignment`.
  public var requestedBytes: Int { lock.withLock { used } }

  /// The next `bytes` of the region, or nil when there is none or too little of it left (the
  /// request is counted either way).
  public func take(_ bytes: Int) -> OutputPlacement.Region? {
    lock.withLock {
      let offset = used
      used += MemoryPlan.aligned(bytes)
      guard let region, used <= region.bytes else { return nil }
      return OutputPlacement.Region(arena: region.arena, offset: region.offset + offset, bytes: bytes)
    }
  }
}
