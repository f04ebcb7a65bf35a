// MARK: - Skip-gradient fusion

/// Joins the ops that make the gradient of a U-Net encoder's output into one `SkipGradient`: the
/// skip's share of the concat's gradient (the second output of a `cropConcatBackward` where the
/// skip connection is one op, else the zero `pad` about the centre of a channel `slice`), max
/// pooling's backward, their sum and, when it alone reads the sum, ReLU's backward against the
/// pooled value. Three kernels over the encoder's largest tensors become one: the zero-padded skip
/// gradient and the pool's gradient are never written, and one read of the encoder's output gives
/// both the windows' maxima and ReLU's mask. Each joined value must be read by the next op alone
/// (not handed back, not viewed). The fused op runs where the last joined op ran, when all it reads
/// exists; a `cropConcatBackward` stays as the `slice` that makes the upsampled path's gradient
/// (which the backward pass needs long before the pool's gradient is known), or goes when nothing
/// reads it.
public struct FuseSkipGradient: CompilerPass {
  public let name = "fuse-skip-gradient"
  public init() {}

  /// What a match replaces, by instruction position: a new instruction, or nil to drop it.
  typealias Rewrite = [Int: Program.Instruction?]

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    let rewrite = try Self.rewrite(program)
    guard !rewrite.isEmpty else { return }
    program.instructions = program.instructions.indices.compactMap { i in
      if let replacement = rewrite[i] { return replacement }
      return program.instructions[i]
    }
  }

  // MARK: Matching

  /// Every match's rewrite.
  static func rewrite(_ program: Program) throws -> Rewrite {
    let ins = program.instructions
    var readers = [Int](repeating: 0, count: program.values.count)
    var reader: [Int: Int] = [:]  // slot -> the position of its (last) reader
    var maker: [Int: Int] = [:]  // slot -> the position that makes it
    for (i, instruction) in ins.enumerated() {
      for s in Set(instruction.inputs) { readers[s] += 1 }
      for s in instruction.inputs { reader[s] = i }
      for s in instruction.outputs { maker[s] = i }
    }
    let kept = Set(program.outputs).union(program.values.compactMap(\.aliasOf))
    /// Whether slot `s` is made by an unbound instruction and read by one instruction alone.
    func passesOn(_ s: Int) -> Bool {
      readers[s] == 1 && !kept.contains(s) && program.values[s].aliasOf == nil && maker[s].map { ins[$0].bindings.isEmpty } == true
    }

    var rewrite: Rewrite = [:]
    for (i, add) in ins.enumerated() {
      guard (add.op as? Binary)?.function == .add, add.bindings.isEmpty, add.inputs.count == 2, Set(add.inputs).count == 2,
        add.inputs.allSatisfy(passesOn),
        let k = add.inputs.firstIndex(where: { ins[maker[$0]!].op is MaxPool2DBackward }),
        let pool = ins[maker[add.inputs[k]]!].op as? MaxPool2DBackward
      else { continue }
      let poolAt = maker[add.inputs[k]]!
      let (x, dy) = (ins[poolAt].inputs[0], ins[poolAt].inputs[1])
      guard let skip = share(add.inputs[1 - k], of: x, program, maker, passesOn, readers: readers, kept: kept),
        ([poolAt] + skip.replaced.keys).allSatisfy({ rewrite.index(forKey: $0) == nil })
      else { continue }
      // ReLU's backward against the pooled value, when it alone reads the sum.
      let sum = add.outputs[0]
      let relu = passesOn(sum) ? reader[sum].flatMap { r in
        ins[r].op is ReLUBackward && ins[r].inputs == [sum, x] && ins[r].bindings.isEmpty ? r : nil
      } : nil
      let last = relu ?? i
      let op = SkipGradient(pool: pool.pool, channels: skip.channels, reluBackward: relu != nil)
      let inputs = [x, dy, skip.gradient]
      guard try op.outputType(inputs.map { program.values[$0].type }) == program.values[ins[last].outputs[0]].type else { continue }
      rewrite[last] = Program.Instruction(op: op, inputs: inputs, outputs: ins[last].outputs, traceIndex: ins[last].traceIndex)
      rewrite[poolAt] = .some(nil)
      if last != i { rewrite[i] = .some(nil) }
      for (position, replacement) in skip.replaced { rewrite[position] = .some(replacement) }
    }
    return rewrite
  }

  /// Where the skip's share of a concat's gradient comes from: the concat's gradient, where the
  /// skip's channels start in it, and what the join does to the instructions that made the share
  /// (by position: the instruction that takes its place, or nil to drop it).
  struct SkipShare {
    let gradient: Int
    let channels: Int
    let replaced: [Int: Program.Instruction?]
  }

  /// The skip's share that slot `s` is, for the encoder output `x`, if it is one: output 1 of a
  /// `cropConcatBackward` (which stays as the slice of its output 0 when that is read), or a zero
  /// pad back to the centre window of `x` of a slice of the channels from some point to the last,
  /// over the whole batch, height and width, which the pad alone reads.
  static func share(
    _ s: Int, of x: Int, _ program: Program, _ maker: [Int: Int], _ passesOn: (Int) -> Bool, readers: [Int], kept: Set<Int>
  ) -> SkipShare? {
    let ins = program.instructions
    let p = maker[s]!
    if let crop = ins[p].op as? CropConcatBackward, ins[p].outputs[1] == s {
      let upsampled = ins[p].outputs[0]
      let read = readers[upsampled] > 0 || kept.contains(upsampled)
      return SkipShare(gradient: ins[p].inputs[0], channels: crop.channels, replaced: [p: read ? upsampledGradient(ins[p], program) : nil])
    }
    guard let pad = ins[p].op as? Pad, pad.mode == .zero, let sliced = ins[p].inputs.first, passesOn(sliced),
      let q = maker[sliced], let slice = ins[q].op as? Slice
    else { return nil }
    let g = ins[q].inputs[0]
    let whole = program.values[g].type.shape.dims
    guard whole.count == 4, slice.starts == [0, 0, 0, slice.starts[3]], slice.sizes == Array(whole[0..<3]) + [whole[3] - slice.starts[3]]
    else { return nil }
    let centre = CropWindow.padding(crop: program.values[sliced].type.shape, whole: program.values[x].type.shape)
    guard pad.before == centre.before, pad.after == centre.after else { return nil }
    return SkipShare(gradient: g, channels: slice.starts[3], replaced: [p: nil, q: nil])
  }

  /// The `cropConcatBackward` instruction `ins` reduced to its first output (the upsampled path's
  /// gradient, a channel slice of its input).
  private static func upsampledGradient(_ ins: Program.Instruction, _ program: Program) -> Program.Instruction {
    let sizes = program.values[ins.outputs[0]].type.shape.dims
    return Program.Instruction(
      op: Slice(starts: [0, 0, 0, 0], sizes: sizes), inputs: [ins.inputs[0]], outputs: [ins.outputs[0]], traceIndex: ins.traceIndex)
  }
}
