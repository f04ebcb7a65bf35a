// MARK: - In-place outputs

/// A backend whose kernels may write an op's output over one of its inputs: asked by the first
/// run of a program (`Program.firstRun`), with the buffers the kernels made, so that it can
/// compare their layouts.
public protocol InPlaceWriting {
  /// Whether the kernel of an op of `kind`, given its output's region over the bytes of `input`
  /// (its operand number `operand`), reads every element of `input` before writing the output
  /// element at the same place (an elementwise loop in one layout), so that the output may take
  /// `input`'s bytes when `input` dies at the op.
  func mayOverwrite(_ input: any DeviceStorage, operand: Int, with output: any DeviceStorage, kind: OpKind) -> Bool
}

/// Gives an op's output the bytes of an input that dies at that op, where the backend said its
/// kernel may overwrite that input (`Instruction.overwritable`): the fused bias and ReLU after a
/// transposed convolution writes over the convolution's output, a fused or a lone ReLU backward
/// over its cotangent. Both values must be planned buffers of the arena (not an input, constant or output
/// of the function, not a view or viewed, not in a concat written in place) of the same bytes.
/// The memory plan then makes them one buffer, live from the input's producer to the output's last
/// reader, which the validator checks like any other.
public struct WriteInPlace: CompilerPass {
  public let name = "in-place"
  public let needsFootprints = true
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    program.inPlace = [:]
    let last = program.lastUses()
    let returned = Set(program.outputs.map(program.aliasRoot))
    let viewed = Set(program.values.compactMap(\.aliasOf))
    let grouped = Set(program.concatGroups.flatMap { [$0.concat] + $0.members.map(\.slot) })
    func plannable(_ s: Int) -> Bool {
      guard case .produced = program.values[s].source else { return false }
      return program.values[s].aliasOf == nil && !viewed.contains(s) && !returned.contains(s) && !grouped.contains(s)
        && program.values[s].footprint != nil
    }
    for (i, ins) in program.instructions.enumerated() where ins.outputs.count == 1 && !ins.overwritable.isEmpty {
      let out = ins.outputs[0]
      guard plannable(out) else { continue }
      let bytes = program.values[out].footprint!.bytes
      if let s = ins.overwritable.first(where: { s in
        plannable(s) && last[s] == i && ins.inputs.filter { $0 == s }.count == 1
          && program.values[s].footprint!.bytes == bytes && program.values[s].type == program.values[out].type
      }) {
        program.inPlace[out] = s
      }
    }
  }
}
