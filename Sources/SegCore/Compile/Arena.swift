// MARK: - Arenas

/// One block of a backend's memory that holds a replayed program's intermediate values at the
/// offsets of its memory plan: allocated once per program and reused by every replay, so that a
/// replay allocates nothing for them.
public protocol DeviceArena: AnyObject {
  /// Its size in bytes.
  var byteCount: Int { get }
}

/// How a buffer a kernel just made holds its value: the bytes it takes (layout padding included,
/// what a plan must reserve to place it) and the memory it lives in (a view of another tensor's
/// buffer names that buffer's memory, so that the plan keeps the two together).
public struct StorageFootprint: Hashable, Sendable {
  /// Bytes of the buffer the kernel allocated for the value.
  public let bytes: Int
  /// The identity of that buffer.
  public let memory: ObjectIdentifier

  /// A footprint of `bytes` in the buffer identified by `memory`.
  public init(bytes: Int, memory: ObjectIdentifier) { (self.bytes, self.memory) = (bytes, memory) }
}

/// A backend whose arenas know which of the values placed in them are still held (a replay's
/// output the caller kept): a program may then place its outputs in the arena
/// (`Program.placesOutputs`), and a replay that finds the arena still holding some writes its own
/// values only in the bytes between them, or runs without the arena, never over them.
public protocol ArenaValueCounting {
  /// The byte ranges of `arena` whose buffers are still held, in any order.
  func heldRegions(in arena: any DeviceArena) -> [Range<Int>]
}

// MARK: - Output placement

/// Where the caller wants the outputs of the kernel that runs now: per output, a region of an
/// arena (nil: the kernel allocates, as it always may). A kernel that can write into given memory
/// asks for its output's region with `OutputPlacement.take(_:bytes:)` where it would allocate;
/// one that does not ask allocates its own buffer, which is always correct, only not planned.
public final class OutputPlacement: @unchecked Sendable {
  /// A region of an arena: `bytes` bytes from `offset`.
  public struct Region {
    public let arena: any DeviceArena
    public let offset: Int
    public let bytes: Int

    /// `bytes` bytes of `arena` from `offset`.
    public init(arena: any DeviceArena, offset: Int, bytes: Int) { (self.arena, self.offset, self.bytes) = (arena, offset, bytes) }
  }

  /// The placement of the kernel running now on this thread or task, when its caller gave one.
  @TaskLocal public static var current: OutputPlacement?

  private var regions: [Region?]
  /// The types of the outputs of the kernel running now, when the caller gave them.
  public let outputTypes: [TensorType]?

  /// Places output `k` (of type `types[k]`, when given) in `regions[k]` (nil: not placed).
  public init(_ regions: [Region?], types: [TensorType]? = nil) { (self.regions, outputTypes) = (regions, types) }

  /// Output `index`'s region when it was given and `bytes` fit in it, handed out once: a
  /// candidate that takes it and then declines leaves the next candidate to allocate.
  public func take(_ index: Int, bytes: Int) -> Region? {
    guard index < regions.count, let region = regions[index], bytes <= region.bytes else { return nil }
    regions[index] = nil
    return region
  }

  /// The region of a kernel's only output, handed out once, to a buffer of exactly that output's
  /// type: for a backend whose kernels make their buffers without saying which output each is. A
  /// scratch buffer of another type never gets it (one kept past the kernel, as a cache, would be
  /// overwritten by the values planned after); with several outputs none is placed.
  public func takeOnly(_ type: TensorType) -> Region? {
    guard let types = outputTypes, types.count == 1, types[0] == type, let region = regions[0] else { return nil }
    regions[0] = nil
    return region
  }

  /// Output `index`'s region for the kernel running now (`current`), if any.
  public static func take(_ index: Int, bytes: Int) -> Region? { current?.take(index, bytes: bytes) }
}

extension KernelTable {
  /// `run(_:_:outputs:)` with the outputs placed as `placement` says (nil: allocated by the kernels).
  public func run(_ op: any Primitive, _ inputs: [Operand], outputs: [TensorType], placement: OutputPlacement?) throws -> [any DeviceStorage] {
    guard let placement else { return try run(op, inputs, outputs: outputs) }
    return try OutputPlacement.$current.withValue(placement) { try run(op, inputs, outputs: outputs) }
  }
}

// MARK: - A program's arena

/// The arena programs replay in: one per backend, shared by every program on it, since a training
/// step replays its programs one after another (the gradients, the penalty, an update per
/// parameter shape) and none keeps a value in the arena past its replay but the outputs of a
/// program that places them there (the gradients, let go by the end of the step). It grows to the
/// largest plan and is kept. A replay that finds values still held in it (the gradients, while
/// the penalty and the updates read them) is given a window: the lowest run of free bytes between
/// them that its plan fits in, else it runs without the arena, as does one that finds the arena
/// in use (a program run from inside another, or from another thread). Without windows the
/// penalty and the updates allocated their 250 MB a 572x572 step, 70 MB of it in pages faulted in
/// afresh; a second arena for them held 72 MiB more. One arena per program would hold every small
/// program's bytes (an update's, per parameter shape) for the whole run: measured at 572x572,
/// 300 MB more.
final class ProgramArena: @unchecked Sendable {
  nonisolated(unsafe) private static var byBackend: [ObjectIdentifier: ProgramArena] = [:]
  private static let registry = Lock()

  /// The arena of `backend`'s programs.
  static func shared(for backend: any Backend) -> ProgramArena {
    registry.withLock {
      if let arena = byBackend[ObjectIdentifier(backend)] { return arena }
      let arena = ProgramArena()
      byBackend[ObjectIdentifier(backend)] = arena
      return arena
    }
  }

  /// One replay's part of the arena: its bytes from `base` on (`release()` gives it back).
  struct Window {
    let arena: any DeviceArena
    let base: Int
  }

  private var arena: (any DeviceArena)?
  /// Whether the backend said it has no arenas.
  private var none = false
  private var busy = false
  private let lock = Lock()

  /// A window of at least `bytes` of the arena on `backend` (the arena made, or remade larger, when
  /// it holds no value and is too small), or nil when the backend has none, it is in use, or its
  /// held values leave no room; `release()` after a replay that got one.
  func acquire(bytes: Int, on backend: any Backend) throws -> Window? {
    let free: Bool = lock.withLock {
      if busy || none { return false }
      busy = true
      return true
    }
    guard free else { return nil }
    // Only the holder of `busy` reads or writes `arena`.
    if let arena, let counting = backend as? any ArenaValueCounting {
      let held = counting.heldRegions(in: arena)
      if !held.isEmpty {
        guard let base = Self.lowestGap(of: bytes, in: arena.byteCount, around: held) else {
          release()
          return nil
        }
        return Window(arena: arena, base: base)
      }
    }
    if (arena?.byteCount ?? -1) < bytes {
      arena = nil
      do {
        arena = try backend.makeArena(bytes: bytes)
      } catch {
        release()
        throw error
      }
      if arena == nil { lock.withLock { none = true } }
    }
    guard let arena else {
      release()
      return nil
    }
    return Window(arena: arena, base: 0)
  }

  /// Lets the next replay use the arena.
  func release() { lock.withLock { busy = false } }

  /// The lowest offset, a multiple of `MemoryPlan.alignment`, from which `bytes` bytes of an arena
  /// of `size` bytes meet none of `held`; nil when there is none.
  static func lowestGap(of bytes: Int, in size: Int, around held: [Range<Int>]) -> Int? {
    var start = 0
    for r in held.sorted(by: { $0.lowerBound < $1.lowerBound }) where !r.isEmpty {
      if r.lowerBound >= start + bytes { return start }
      start = max(start, MemoryPlan.aligned(r.upperBound))
    }
    return start + bytes <= size ? start : nil
  }
}
