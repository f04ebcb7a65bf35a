// MARK: - Program

/// A traced step as a static program: values in numbered slots, and instructions (an op, the slots
/// it reads, the slots it writes) in the order the eager step ran them. Slots are the function's
/// inputs (the batch, the parameters, the optimizer state: whatever the caller passes in and gets
/// back), constants captured while tracing (their buffers are kept), or outputs of instructions.
public struct Program: CustomStringConvertible {
  /// Where a slot's value comes from.
  public enum Source {
    /// The function's input number `index`.
    case input(Int)
    /// A value made outside the traced ops (a seed of ones, zeros), captured with its buffer.
    case constant(any DeviceStorage)
    /// Output `output` of instruction `instruction` (an index into the trace, stable across passes).
    case produced(instruction: Int, output: Int)
  }

  /// One slot: its type, its source and, as traced, how the backend held it.
  public struct Value {
    public let type: TensorType
    public let source: Source
    /// The buffer its kernel made when traced (nil when the backend does not say).
    public internal(set) var footprint: StorageFootprint?
    /// The slot whose buffer this value is a view of (a kernel returned a view of its input), if any.
    public internal(set) var aliasOf: Int?
  }

  /// One op of the program. `bindings` name the step scalars its attributes take at each replay
  /// (`StepScalars`); `frees` are the slots whose last reader it is (filled by the memory plan).
  public struct Instruction {
    /// The op with its attributes as traced.
    public var op: any Primitive
    /// Slots read, in operand order.
    public var inputs: [Int]
    /// Slots written, one per output.
    public var outputs: [Int]
    /// The position of the op in the trace (passes remove instructions; this stays).
    public let traceIndex: Int
    /// Attributes re-read from the step's scalars at each replay.
    public var bindings: [ScalarBinding] = []
    /// Slots to let go of once this instruction has run.
    public var frees: [Int] = []
    /// For a concat: whether the backend laid its traced output out as its inputs' bytes in turn.
    public var contiguousConcat = false
    /// The input slots whose bytes the kernel may write its output over (`InPlaceWriting`).
    public var overwritable: [Int] = []
    /// Bytes of scratch its kernel asked for at the first run (`KernelScratch`), which the memory
    /// plan places in the arena, live at this instruction alone.
    public var scratchBytes = 0

    /// An instruction running `op` on slots `inputs` into slots `outputs`, `traceIndex`th in the trace.
    public init(op: any Primitive, inputs: [Int], outputs: [Int], traceIndex: Int, bindings: [ScalarBinding] = []) {
      (self.op, self.inputs, self.outputs, self.traceIndex, self.bindings) = (op, inputs, outputs, traceIndex, bindings)
    }
  }

  /// The backend the program was traced on, whose kernels replay it.
  public let backend: any Backend
  /// Every slot, by number.
  public internal(set) var values: [Value] = []
  /// The instructions, in execution order.
  public var instructions: [Instruction] = []
  /// The slot of each input of the function.
  public internal(set) var inputs: [Int] = []
  /// The slot of each output of the function.
  public internal(set) var outputs: [Int] = []
  /// The arena layout of the intermediate values, once `PlanMemory` has run.
  public var memoryPlan: MemoryPlan?
  /// The concats whose inputs are written in place (`ConcatInPlace`).
  public var concatGroups: [ConcatGroup] = []
  /// Outputs written over an input that dies at their op, by output slot (`WriteInPlace`).
  public var inPlace: [Int: Int] = [:]
  /// Whether the memory plan places the function's outputs in the arena too, live to the end: the
  /// caller lets them go before the next replay (else that replay runs without the arena). Set
  /// only on a backend that counts the values its arenas hold (`ArenaValueCounting`).
  public internal(set) var placesOutputs = false
  /// Inputs the caller gives up at each call, by output position -> input position: the kernel
  /// making the output may write it over the input's buffer (`CompiledFunction.donated`).
  public internal(set) var donations: [Int: Int] = [:]
  /// How replays are captured as one graph on a backend that can (nil: every kernel is launched).
  public var capture: ProgramCapture?
  /// The arena the replays place the planned values in (shared by the backend's programs).
  var arena: ProgramArena { ProgramArena.shared(for: backend) }

  /// An empty program on `backend`.
  public init(backend: any Backend) { self.backend = backend }

  /// Adds a slot and returns its number.
  mutating func addValue(_ type: TensorType, _ source: Source, footprint: StorageFootprint? = nil, aliasOf: Int? = nil) -> Int {
    values.append(Value(type: type, source: source, footprint: footprint, aliasOf: aliasOf))
    return values.count - 1
  }

  /// The slot whose buffer `slot` lives in: itself, or the value it is a view of, followed to the end.
  public func aliasRoot(_ slot: Int) -> Int {
    var s = slot
    while let a = values[s].aliasOf { s = a }
    return s
  }

  /// Readers of each slot, by instruction position (outputs are read at the end, `instructions.count`).
  public func lastUses() -> [Int?] {
    var last = [Int?](repeating: nil, count: values.count)
    for (i, ins) in instructions.enumerated() { for s in ins.inputs { last[s] = i } }
    for s in outputs { last[s] = instructions.count }
    return last
  }

  // MARK: Printing

  public var description: String {
    var lines = ["program on \(backend.name): \(instructions.count) instructions, \(values.count) slots, inputs \(inputs.map { "%\($0)" }.joined(separator: " "))"]
    for (s, v) in values.enumerated() {
      if case .constant = v.source { lines.append("  %\(s) = constant \(v.type)") }
    }
    for (position, ins) in instructions.enumerated() {
      let outs = ins.outputs.map { "%\($0): \(values[$0].type)" }.joined(separator: ", ")
      let views = ins.outputs.compactMap { s in values[s].aliasOf.map { "%\(s) views %\(aliasRoot($0))" } }
      var line = "  \(outs) = \(ins.op)(\(ins.inputs.map { "%\($0)" }.joined(separator: ", ")))"
      if !ins.bindings.isEmpty { line += " bound " + ins.bindings.map(\.description).joined(separator: ", ") }
      if !views.isEmpty { line += " " + views.joined(separator: ", ") }
      if !ins.frees.isEmpty { line += " frees " + ins.frees.map { "%\($0)" }.joined(separator: " ") }
      if let plan = memoryPlan {
        let at = ins.outputs.compactMap { s in plan.offsets[s].map { "%\(s)@\($0)" } }
        if !at.isEmpty { line += " at " + at.joined(separator: " ") }
        if let scratch = plan.scratch[position] { line += " scratch \(scratch.bytes)@\(scratch.offset)" }
      }
      lines.append(line)
      if let fused = ins.op as? FusedElementwise {
        lines += fused.expression.split(separator: "\n").map { "      \($0)" }
        if let source = backend.generatedSource(for: fused, inputs: ins.inputs.map { values[$0].type }) { lines += source.split(separator: "\n", omittingEmptySubsequences: false).map { "      | \($0)" } }
      }
    }
    lines.append("  return \(outputs.map { "%\($0)" }.joined(separator: ", "))")
    for g in concatGroups { lines.append("  \(g)") }
    for (out, input) in inPlace.sorted(by: { $0.key < $1.key }) { lines.append("  %\(out) written over %\(input)") }
    if let plan = memoryPlan { lines.append("  \(plan.summary)") }
    return lines.joined(separator: "\n")
  }
}
