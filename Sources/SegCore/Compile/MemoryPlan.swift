// MARK: - Memory plan

/// Where each intermediate value of a program lives in one arena, which the replay allocates once
/// and reuses: liveness over the whole step (a value is live from the instruction that makes it to
/// its last reader, both included, so an output never shares bytes with an input of its own op),
/// packed by size with reuse, beside the scratch each kernel asked for (`KernelScratch`). Inputs
/// and constants are not in the arena, nor are the function's outputs unless the program places
/// them there (`Program.placesOutputs`).
public struct MemoryPlan: Sendable {
  /// One intermediate value, or one kernel's scratch: its slot, the instruction positions it is
  /// live over, its size and its offset in the arena.
  public struct Buffer: Sendable {
    /// The value's slot (-1 for a kernel's scratch).
    public let slot: Int
    public let start: Int
    public let end: Int
    public let bytes: Int
    public var offset = 0
    /// For a kernel's scratch (`KernelScratch`), the position of its instruction.
    public let scratchOf: Int?

    /// A buffer of `bytes` live from instruction `start` to `end` (both included), not yet placed.
    public init(slot: Int, start: Int, end: Int, bytes: Int) {
      (self.slot, self.start, self.end, self.bytes, scratchOf) = (slot, start, end, bytes, nil)
    }

    /// The scratch of the kernel at instruction `position`, `bytes` long, not yet placed.
    public init(scratchOf position: Int, bytes: Int) {
      (slot, start, end, self.bytes, scratchOf) = (-1, position, position, bytes, position)
    }

    /// "%slot", or "the scratch of instruction i", for errors.
    var name: String { scratchOf.map { "the scratch of instruction \($0)" } ?? "%\(slot)" }
  }

  /// Buffers start on this many bytes, as a vectorised kernel wants.
  public static let alignment = 64

  /// `bytes` rounded up to a whole number of `alignment`s (at least one): what a buffer of `bytes` takes.
  public static func aligned(_ bytes: Int) -> Int { (max(bytes, 1) + alignment - 1) / alignment * alignment }

  /// Every intermediate value, in slot order.
  public internal(set) var buffers: [Buffer]
  /// Each buffer's offset, by slot.
  public internal(set) var offsets: [Int: Int] = [:]
  /// Each buffer's bytes, by slot.
  public internal(set) var sizes: [Int: Int] = [:]
  /// Each kernel's scratch region (`KernelScratch`), by instruction position.
  public internal(set) var scratch: [Int: (offset: Int, bytes: Int)] = [:]
  /// The values placed inside another buffer (a concat's inputs in its output: `ConcatInPlace`;
  /// an output written over its input: `WriteInPlace`), by slot, with the slot of the buffer they
  /// lie in; their offsets and sizes are in `offsets` and `sizes`.
  public internal(set) var inside: [Int: Int] = [:]
  /// The arena's size: the end of the highest buffer.
  public internal(set) var arenaBytes = 0
  /// The bytes of all buffers together, as if none were reused.
  public var totalBytes: Int { buffers.reduce(0) { $0 + $1.bytes } }
  /// The most bytes live at one instruction: no packing can use less.
  public var peakLiveBytes: Int {
    var delta = [Int](repeating: 0, count: (buffers.map(\.end).max() ?? 0) + 2)
    for b in buffers {
      delta[b.start] += b.bytes
      delta[b.end + 1] -= b.bytes
    }
    var live = 0, peak = 0
    for d in delta {
      live += d
      peak = max(peak, live)
    }
    return peak
  }

  /// One line for dumps and reports.
  public var summary: String {
    let mib = { (b: Int) in String(format: "%.2f MiB", Double(b) / 1_048_576) }
    return "memory plan: \(buffers.count) buffers, arena \(mib(arenaBytes)), peak live \(mib(peakLiveBytes)), without reuse \(mib(totalBytes))"
  }

  /// Plans the intermediate values of `program` (its instructions as they are now), each taking
  /// the bytes its kernel allocated when traced (layout padding included) or, when the backend
  /// does not say, its elements' bytes. A value with views (a kernel that returned a view of its
  /// input) is one buffer live until its last view's last reader. The function's outputs are not
  /// planned, since the caller keeps them past the replay, unless the program places them
  /// (`Program.placesOutputs`): then each is a buffer live from its op to the end. Each kernel's
  /// scratch (`Program.Instruction.scratchBytes`) is a buffer live at its instruction alone.
  public init(_ program: Program) {
    let last = program.lastUses()
    let returned: Set<Int> = program.placesOutputs ? [] : Set(program.outputs.map(program.aliasRoot))
    var start: [Int: Int] = [:], end: [Int: Int] = [:]
    var order: [Int] = []
    for (i, ins) in program.instructions.enumerated() {
      for s in ins.outputs {
        let root = program.aliasRoot(s)
        if root == s {
          start[s] = i
          order.append(s)
        }
        end[root] = max(end[root] ?? i, last[s] ?? i, i)
      }
    }
    // A concat written in place: its inputs are bytes of its buffer, which lives as long as any.
    var memberOf: [Int: (concat: Int, member: ConcatGroup.Member)] = [:]
    for g in program.concatGroups where start[g.concat] != nil {
      for m in g.members where start[m.slot] != nil {
        memberOf[m.slot] = (g.concat, m)
        start[g.concat] = min(start[g.concat]!, start[m.slot]!)
        end[g.concat] = max(end[g.concat]!, end[m.slot]!)
      }
    }
    // An output written over an input (`WriteInPlace`) is its input's buffer, live to its own end.
    var host: [Int: Int] = [:]
    for (out, input) in program.inPlace.sorted(by: { $0.key < $1.key })
    where start[out] != nil && start[input] != nil && memberOf[out] == nil && memberOf[input] == nil {
      let root = host[input] ?? input
      host[out] = root
      end[root] = max(end[root]!, end[out]!)
    }
    let aligned = { (s: Int) -> Int in
      let v = program.values[s]
      let raw = v.footprint?.bytes ?? v.type.shape.count * v.type.dtype.byteSize
      return Self.aligned(raw)
    }
    let values = order.filter { !returned.contains($0) && memberOf[$0] == nil && host[$0] == nil }.map { s in
      Buffer(slot: s, start: start[s]!, end: end[s]!, bytes: aligned(s))
    }
    let scratch = program.instructions.indices.filter { program.instructions[$0].scratchBytes > 0 }.map { i in
      Buffer(scratchOf: i, bytes: program.instructions[i].scratchBytes)
    }
    self.init(packing: values + scratch)
    for (slot, m) in memberOf.sorted(by: { $0.key < $1.key }) {
      guard let base = offsets[m.concat] else { continue }
      (offsets[slot], sizes[slot], inside[slot]) = (base + m.member.offset, m.member.bytes, m.concat)
    }
    for (slot, root) in host.sorted(by: { $0.key < $1.key }) {
      guard let base = offsets[root] else { continue }
      (offsets[slot], sizes[slot], inside[slot]) = (base, min(aligned(slot), sizes[root]!), root)
    }
  }

  /// How `init(packing:)` may order and place buffers: the order they are placed in and whether
  /// each goes in the lowest gap that fits (first fit) or the smallest one (best fit).
  public enum Packing: CaseIterable, Sendable {
    /// Largest first, lowest gap (TensorFlow Lite's greedy-by-size planner).
    case sizeFirstFit
    /// Largest first, smallest gap that fits.
    case sizeBestFit
    /// Largest bytes x lifetime first, lowest gap.
    case areaFirstFit
    /// Longest-lived first, lowest gap.
    case lifetimeFirstFit
  }

  /// Packs `buffers` (offsets ignored) each of the ways of `Packing` and keeps the smallest arena:
  /// no single greedy order wins on every program, and planning runs once per trace.
  public init(packing buffers: [Buffer], ways: [Packing] = Packing.allCases) {
    var best: MemoryPlan?
    for way in ways {
      let plan = MemoryPlan(packing: buffers, way: way)
      if best == nil || plan.arenaBytes < best!.arenaBytes { best = plan }
    }
    self = best ?? MemoryPlan(packing: buffers, way: .sizeFirstFit)
  }

  /// Packs `buffers` one way: in its order, each at the offset it picks among the gaps left by
  /// placed buffers whose lifetimes meet its own.
  init(packing buffers: [Buffer], way: Packing) {
    var placed: [Buffer] = []
    let key: (Buffer) -> (Int, Int)
    switch way {
    case .sizeFirstFit, .sizeBestFit: key = { ($0.bytes, -$0.start) }
    case .areaFirstFit: key = { ($0.bytes * ($0.end - $0.start + 1), $0.bytes) }
    case .lifetimeFirstFit: key = { ($0.end - $0.start, $0.bytes) }
    }
    let order = buffers.indices.sorted { key(buffers[$0]) > key(buffers[$1]) }
    var result = buffers
    for i in order {
      var b = buffers[i]
      let conflicts = placed.filter { $0.start <= b.end && b.start <= $0.end }.sorted { $0.offset < $1.offset }
      // Gaps between the conflicting buffers, in offset order; the last is open-ended.
      var gaps: [(offset: Int, size: Int?)] = []
      var end = 0
      for c in conflicts {
        if c.offset > end { gaps.append((end, c.offset - end)) }
        end = max(end, c.offset + c.bytes)
      }
      gaps.append((end, nil))
      let fitting = gaps.filter { $0.size.map { $0 >= b.bytes } ?? true }
      if way == .sizeBestFit {
        b.offset = fitting.min { ($0.size ?? .max, $0.offset) < ($1.size ?? .max, $1.offset) }!.offset
      } else {
        b.offset = fitting[0].offset
      }
      placed.append(b)
      result[i] = b
    }
    self.buffers = result
    for b in result {
      if let position = b.scratchOf {
        scratch[position] = (b.offset, b.bytes)
      } else {
        offsets[b.slot] = b.offset
        sizes[b.slot] = b.bytes
      }
      arenaBytes = max(arenaBytes, b.offset + b.bytes)
    }
  }

  // MARK: Validation

  /// Proves the plan sound: every buffer inside the arena, aligned, and no two buffers live at the
  /// same instruction overlapping in the arena. Errors name both buffers.
  public func validate() throws {
    for b in buffers where b.offset < 0 || b.offset + b.bytes > arenaBytes || b.offset % Self.alignment != 0 || b.start > b.end {
      throw TensorError(op: "memory plan", "buffer \(b.name) at \(b.offset) (\(b.bytes) bytes, live \(b.start)...\(b.end)) is outside the arena of \(arenaBytes) bytes or misaligned")
    }
    for (slot, parent) in inside {
      guard let o = offsets[slot], let n = sizes[slot], let po = offsets[parent], let pn = sizes[parent],
            o >= po, o + n <= po + pn, o % Self.alignment == 0 else {
        throw TensorError(op: "memory plan", "%\(slot), placed inside %\(parent), is not within its bytes or misaligned")
      }
    }
    // A sweep by start: each buffer meets only those still live when it starts.
    var active: [Buffer] = []
    for b in buffers.sorted(by: { $0.start < $1.start }) {
      active.removeAll { $0.end < b.start }
      if let c = active.first(where: { $0.offset < b.offset + b.bytes && b.offset < $0.offset + $0.bytes }) {
        throw TensorError(
          op: "memory plan",
          "buffers \(c.name) (live \(c.start)...\(c.end), bytes \(c.offset)..<\(c.offset + c.bytes)) and \(b.name) (live \(b.start)...\(b.end), bytes \(b.offset)..<\(b.offset + b.bytes)) are live together and overlap")
      }
      active.append(b)
    }
  }
}

// MARK: - Passes

/// Plans the arena and writes, on each instruction, the slots it is the last reader of, so that the
/// replay lets each value go at its last use.
public struct PlanMemory: CompilerPass {
  public let name = "memory-plan"
  public let needsFootprints = true
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    let last = program.lastUses()
    for i in program.instructions.indices { program.instructions[i].frees = [] }
    for (s, use) in last.enumerated() {
      guard let use, use < program.instructions.count else { continue }
      program.instructions[use].frees.append(s)
    }
    // An output nobody reads (one of several) goes as soon as it is made.
    for i in program.instructions.indices {
      for s in program.instructions[i].outputs where last[s] == nil { program.instructions[i].frees.append(s) }
    }
    program.memoryPlan = MemoryPlan(program)
  }
}

/// Checks the memory plan (`MemoryPlan.validate`); a program without one fails.
public struct ValidateMemoryPlan: CompilerPass {
  public let name = "memory-check"
  public let needsFootprints = true
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    guard let plan = program.memoryPlan else {
      throw TensorError(op: "memory plan", "the program has no memory plan; run PlanMemory before ValidateMemoryPlan")
    }
    try plan.validate()
  }
}

extension MemoryPlan {
  /// Moves one buffer (tests corrupt a plan this way to see the validator refuse it).
  public mutating func moveForTesting(slot: Int, to offset: Int) {
    guard let i = buffers.firstIndex(where: { $0.slot == slot && $0.scratchOf == nil }) else { return }
    buffers[i].offset = offset
    offsets[slot] = offset
  }
}
