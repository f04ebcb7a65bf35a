// MARK: - Elementwise fusion

/// Joins chains (and small DAGs) of elementwise ops of one output shape into one
/// `FusedElementwise` each: a ReLU after a bias add, a loss's arithmetic, the scaling and
/// unscaling around a gradient. An op joins the group that made an operand when that operand is
/// read by this op only (not handed back, not viewed, not read later): the value then never
/// leaves the fused kernel, which reads its inputs and writes its output once. The fused op runs
/// where the group's last op ran; its members only move later, after their inputs exist, and
/// no one else read the values in between. Ops whose attributes are step scalars (a loss scale
/// re-read every replay) stay alone, as do ops that make a view.
public struct FuseElementwise: CompilerPass {
  public let name = "fuse-elementwise"
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    let plan = Self.groups(program)
    guard !plan.isEmpty else { return }
    var fusedAt: [Int: Program.Instruction] = [:]
    var dropped = Set<Int>()
    for members in plan {
      fusedAt[members.last!] = try Self.fuse(members, in: program)
      dropped.formUnion(members.dropLast())
    }
    program.instructions = program.instructions.indices.compactMap { i in
      dropped.contains(i) ? nil : fusedAt[i] ?? program.instructions[i]
    }
  }

  // MARK: Grouping

  /// The groups of two or more instruction positions, each in order, that become one fused op.
  static func groups(_ program: Program) -> [[Int]] {
    var readers = [Int](repeating: 0, count: program.values.count)
    for ins in program.instructions { for s in Set(ins.inputs) { readers[s] += 1 } }
    let returned = Set(program.outputs)
    let viewed = Set(program.values.compactMap(\.aliasOf))

    var groups: [Int: [Int]] = [:]  // by the group's first member
    var groupOfOutput: [Int: Int] = [:]  // the slot a group makes -> its key
    for (i, ins) in program.instructions.enumerated() {
      guard FusedElementwise.Elementwise(ins.op) != nil, ins.bindings.isEmpty, ins.outputs.count == 1,
        program.values[ins.outputs[0]].aliasOf == nil
      else { continue }
      let out = ins.outputs[0]
      let shape = program.values[out].type.shape
      var members = [i]
      for s in Set(ins.inputs).sorted() {
        guard let key = groupOfOutput[s], readers[s] == 1, !returned.contains(s), !viewed.contains(s),
          program.values[s].type.shape == shape, let joined = groups.removeValue(forKey: key)
        else { continue }
        groupOfOutput[s] = nil
        members += joined
      }
      members.sort()
      groups[members[0]] = members
      groupOfOutput[out] = members[0]
    }
    return groups.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
  }

  // MARK: Fusing

  /// The fused instruction of `members` (positions, in order): its inputs are the values the
  /// members read that no member makes, its output the last member's.
  static func fuse(_ members: [Int], in program: Program) throws -> Program.Instruction {
    var stepOf: [Int: Int] = [:]
    var inputs: [Int] = []
    var steps: [FusedElementwise.Step] = []
    for i in members {
      let ins = program.instructions[i]
      let operands = ins.inputs.map { s -> FusedElementwise.Source in
        if let j = stepOf[s] { return .step(j) }
        if let k = inputs.firstIndex(of: s) { return .input(k) }
        inputs.append(s)
        return .input(inputs.count - 1)
      }
      let out = ins.outputs[0]
      steps.append(FusedElementwise.Step(op: FusedElementwise.Elementwise(ins.op)!, operands: operands, type: program.values[out].type))
      stepOf[out] = steps.count - 1
    }
    let op = FusedElementwise(steps: steps)
    let last = program.instructions[members.last!]
    // The shape rule of every step again, on the fused op's input types.
    _ = try op.outputType(inputs.map { program.values[$0].type })
    return Program.Instruction(op: op, inputs: inputs, outputs: last.outputs, traceIndex: last.traceIndex)
  }
}
