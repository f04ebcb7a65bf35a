// MARK: - Tracing

/// Records every op that `Tensor.applyOutputs` runs while it is active, as instructions of a
/// `Program`: tracing is an eager run whose ops are also written down, so the first call of a
/// compiled function computes its results as the eager step would.
///
/// Only tensors flow into the program: a value read on the host inside the traced function (an
/// `item()`) and used to decide what to build is frozen as it was when traced, and a leaf made
/// inside it is a constant. What changes per step must come in as an input tensor or as a step
/// scalar (`StepScalars`), marked where its op is made (`markingStepScalar`).
final class ProgramRecorder: @unchecked Sendable {
  /// The recorder of the current task, if any (one task traces at a time; its ops run in order).
  @TaskLocal static var active: ProgramRecorder?

  private(set) var program: Program
  /// The slot of each node seen so far, by node id.
  private var slots: [Int: Int] = [:]
  private var traced = 0

  init(backend: any Backend) { program = Program(backend: backend) }

  /// Records `op` run on `inputs` with `outputs`.
  func record(_ op: any Primitive, inputs: [Node], outputs: [Node]) {
    let inSlots = inputs.map(slot(of:))
    var outSlots: [Int] = []
    for (k, node) in outputs.enumerated() {
      let footprint = program.backend.footprint(of: node.storage)
      // A kernel that returned a view of an input: the plan keeps the input's bytes while the view lives.
      let viewed = footprint.flatMap { f in inSlots.first { program.values[$0].footprint?.memory == f.memory } }
      let s = program.addValue(node.type, .produced(instruction: traced, output: k), footprint: footprint, aliasOf: viewed)
      slots[node.id] = s
      outSlots.append(s)
    }
    var instruction = Program.Instruction(op: op, inputs: inSlots, outputs: outSlots, traceIndex: traced, bindings: StepScalarMarks.bindings(of: op))
    if let concat = op as? Concat, outputs.count == 1 {
      instruction.contiguousConcat = program.backend.concatenatesContiguously(inputs.map(\.storage), into: outputs[0].storage, axis: concat.axis)
    }
    program.instructions.append(instruction)
    traced += 1
  }

  /// Records that `alias` (a detached copy) holds the same value as `node`.
  func alias(_ alias: Node, of node: Node) {
    if let s = slots[node.id] { slots[alias.id] = s }
  }

  /// Marks `node` as the function's next input.
  func addInput(_ node: Node) throws {
    if let s = slots[node.id], case .input(let j) = program.values[s].source {
      throw TensorError(op: "compile", operands: [node.type], "input \(program.inputs.count) is the same tensor as input \(j); pass distinct tensors")
    }
    let s = program.addValue(node.type, .input(program.inputs.count), footprint: program.backend.footprint(of: node.storage))
    slots[node.id] = s
    program.inputs.append(s)
  }

  /// Marks `node` as the function's next output.
  func addOutput(_ node: Node) { program.outputs.append(slot(of: node)) }

  /// The slot of `node`, capturing it as a constant the first time an untraced node is seen.
  private func slot(of node: Node) -> Int {
    if let s = slots[node.id] { return s }
    let s = program.addValue(node.type, .constant(node.storage), footprint: program.backend.footprint(of: node.storage))
    slots[node.id] = s
    return s
  }
}

/// Runs `body` on `inputs` eagerly while recording its ops; returns its outputs and the program
/// that computes them from the inputs on `backend`.
func traceProgram(
  _ inputs: [Tensor], on backend: any Backend, _ body: ([Tensor]) throws -> [Tensor]
) throws -> (program: Program, outputs: [Tensor]) {
  let recorder = ProgramRecorder(backend: backend)
  for x in inputs {
    guard x.backend === backend else {
      throw TensorError(op: "compile", operands: [x.type], "an input lives on \(x.backend.name), the program on \(backend.name); move it with .to(_:)")
    }
    try recorder.addInput(x.node)
  }
  let outputs = try ProgramRecorder.$active.withValue(recorder) { try body(inputs) }
  for y in outputs {
    guard y.backend === backend else {
      throw TensorError(op: "compile", operands: [y.type], "an output lives on \(y.backend.name), the program on \(backend.name)")
    }
    recorder.addOutput(y.node)
  }
  return (recorder.program, outputs)
}
