// MARK: - Concat elimination

/// Writes a concat's inputs where the concat would copy them: when the backend laid the traced
/// concat's output out as its inputs' bytes one after another (`Instruction.contiguousConcat`: on
/// the CPU a channel concat of one image in a channel-blocked layout, as the U-Net's skip joins the
/// upsampled path), each input's producer is given its slice of the concat's buffer, and the
/// concat, finding its inputs already in place, copies nothing. The concat and its inputs become one
/// buffer of the memory plan, live from the first input's producer to the last reader of any of
/// them, so no other value is placed over bytes one of them still needs.
public struct ConcatInPlace: CompilerPass {
  public let name = "concat-in-place"
  public let needsFootprints = true
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    program.concatGroups = []
    let returned = Set(program.outputs.map(program.aliasRoot))
    var taken = Set<Int>()
    for ins in program.instructions where ins.contiguousConcat && ins.outputs.count == 1 {
      let out = ins.outputs[0]
      let slots = [out] + ins.inputs
      // Each value once, made by an instruction, not a view, not handed back, in no other group.
      guard Set(slots).count == slots.count, slots.allSatisfy({ s in
        if case .produced = program.values[s].source {
          return program.values[s].aliasOf == nil && !returned.contains(s) && !taken.contains(s) && program.values[s].footprint != nil
        }
        return false
      }) else { continue }
      // Every input starts on an aligned byte of the concat's buffer and together they fill it.
      var offset = 0, members: [ConcatGroup.Member] = []
      for s in ins.inputs {
        guard offset % MemoryPlan.alignment == 0 else { break }
        let bytes = program.values[s].footprint!.bytes
        members.append(ConcatGroup.Member(slot: s, offset: offset, bytes: bytes))
        offset += bytes
      }
      guard members.count == ins.inputs.count, offset == program.values[out].footprint!.bytes else { continue }
      program.concatGroups.append(ConcatGroup(concat: out, members: members))
      taken.formUnion(slots)
    }
  }
}

/// A concat whose inputs live in its own buffer (`ConcatInPlace`).
public struct ConcatGroup: Sendable, CustomStringConvertible {
  /// One input: its slot and its bytes' place in the concat's buffer.
  public struct Member: Sendable {
    public let slot: Int
    public let offset: Int
    public let bytes: Int
  }

  /// The concat's output slot.
  public let concat: Int
  /// Its inputs, in operand order.
  public let members: [Member]

  public var description: String {
    "concat %\(concat) in place: " + members.map { "%\($0.slot)@+\($0.offset)" }.joined(separator: " ")
  }
}
