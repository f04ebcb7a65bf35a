// MARK: - Recomputing cheap values

/// Makes again, just before their backward readers, the forward values that cost little to make
/// and whose operands are at hand there anyway, instead of keeping them from the forward pass to
/// the backward one: a max-pool's output (its input stays for the pool's backward) and a
/// convolution of few input channels from the function's inputs (the U-Net's first layer, from
/// the image and its weights). At 572x572 they are 115 MiB of the training step's arena, for
/// under 0.1% of its arithmetic. The copy runs the same kernel on the same operands, so it has
/// the same bits; the later readers read it, and the original dies at its last forward reader.
public struct RecomputeCheapValues: CompilerPass {
  public let name = "recompute"
  /// A value is made again only when it would otherwise lie unread over at least this share of
  /// the program's instructions (a forward value waiting for the backward pass).
  static let idleShare = 0.25
  /// A convolution is cheap when each output element sums at most this many products (a 3x3
  /// filter over up to 3 channels).
  static let cheapProducts = 27

  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    var readers = [[Int]](repeating: [], count: program.values.count)
    for (i, ins) in program.instructions.enumerated() { for s in Set(ins.inputs) { readers[s].append(i) } }
    let returned = Set(program.outputs)
    let idle = max(2, Int(Double(program.instructions.count) * Self.idleShare))
    // Clones by the position they go before; readers from `from` on read `clone` for `value`.
    var clones: [Int: [Program.Instruction]] = [:]
    var renames: [(value: Int, clone: Int, from: Int)] = []
    for (p, ins) in program.instructions.enumerated() where ins.outputs.count == 1 && ins.bindings.isEmpty && isCheap(ins, program) {
      let v = ins.outputs[0]
      guard !returned.contains(v), let late = lateReader(after: p, readers[v], idle: idle),
        ins.inputs.allSatisfy({ s in available(s, at: late, program, readers) && !renames.contains { $0.value == s } })
      else { continue }
      let clone = program.addValue(program.values[v].type, program.values[v].source)
      clones[late, default: []].append(Program.Instruction(op: ins.op, inputs: ins.inputs, outputs: [clone], traceIndex: ins.traceIndex))
      renames.append((v, clone, late))
    }
    guard !renames.isEmpty else { return }
    for r in renames {
      for i in readers[r.value] where i >= r.from {
        program.instructions[i].inputs = program.instructions[i].inputs.map { $0 == r.value ? r.clone : $0 }
      }
    }
    program.instructions = program.instructions.enumerated().flatMap { i, ins in (clones[i] ?? []) + [ins] }
  }

  /// Whether `ins` costs little next to the bytes it makes: a max-pool, or a convolution whose
  /// output elements each sum at most `cheapProducts` products.
  func isCheap(_ ins: Program.Instruction, _ program: Program) -> Bool {
    switch ins.op.kind {
    case .maxPool2d: return true
    case .conv2d:
      guard ins.inputs.count >= 2 else { return false }
      let filter = program.values[ins.inputs[1]].type.shape  // HWIO
      return filter.rank == 4 && filter[0] * filter[1] * filter[2] <= Self.cheapProducts
    default: return false
    }
  }

  /// The first reader after the longest stretch (of at least `idle` instructions) in which the
  /// value made at `made` is not read, if any.
  func lateReader(after made: Int, _ readers: [Int], idle: Int) -> Int? {
    var previous = made, best: (gap: Int, at: Int)?
    for r in readers {
      if r - previous >= idle, r - previous > best?.gap ?? 0 { best = (r - previous, r) }
      previous = r
    }
    return best?.at
  }

  /// Whether slot `s` is held at instruction `at` anyway: an input or constant of the function, or
  /// a value made before `at` that something reads at `at` or later.
  func available(_ s: Int, at: Int, _ program: Program, _ readers: [[Int]]) -> Bool {
    guard case .produced = program.values[s].source else { return true }
    return (readers[s].last ?? -1) >= at || program.outputs.contains(s)
  }
}
