// MARK: - Tracing

/// Records every op that `Tensor.applyOutputs` is given while it is active, as instructions of a
/// `Program`, without running it: each output is an abstract value (`TracedStorage`: its type,
/// no buffer), so tracing allocates nothing and runs no kernel, and the traced process never
/// holds the eager step's buffers beside the program's arena. The first call computes its results
/// by running the program once (`Program.firstRun`), which also learns how the backend lays
/// each value out.
///
/// Only tensors flow into the program: reading a traced value on the host inside the traced
/// function (an `item()`) fails and names the value, and a leaf made inside it is a constant. What
/// changes per step must come in as an input tensor or as a step scalar (`StepScalars`), marked
/// where its op is made (`markingStepScalar`).
final class ProgramRecorder: @unchecked Sendable {
  /// The recorder of the current task, if any (one task traces at a time; its ops run in order).
  @TaskLocal static var active: ProgramRecorder?

  private(set) var program: Program
  /// The slot of each node seen so far, by node id.
  private var slots: [Int: Int] = [:]
  private var traced = 0

  init(backend: any Backend) { program = Program(backend: backend) }

  /// The abstract outputs of an op of output types `types`: no kernel runs while tracing.
  func outputs(_ types: [TensorType]) -> [any DeviceStorage] { types.map(TracedStorage.init) }

  /// Records `op` on `inputs` with (abstract) `outputs`. How the backend lays each value out, and
  /// which outputs are views of an input, is learnt when the program first runs.
  func record(_ op: any Primitive, inputs: [Node], outputs: [Node]) {
    let inSlots = inputs.map(slot(of:))
    var outSlots: [Int] = []
    for (k, node) in outputs.enumerated() {
      let s = program.addValue(node.type, .produced(instruction: traced, output: k))
      slots[node.id] = s
      outSlots.append(s)
    }
    program.instructions.append(
      Program.Instruction(op: op, inputs: inSlots, outputs: outSlots, traceIndex: traced, bindings: StepScalarMarks.bindings(of: op)))
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

/// Runs `body` on `inputs` with abstract values, recording its ops; returns the program that
/// computes its outputs from the inputs on `backend` (nothing is computed yet).
func traceProgram(
  _ inputs: [Tensor], on backend: any Backend, _ body: ([Tensor]) throws -> [Tensor]
) throws -> Program {
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
  return recorder.program
}

// MARK: - Abstract values

/// The value of a traced op: its type only. No buffer is behind it, so reading it on the host
/// fails (`checkReadable`) and no kernel is ever given one (tracing runs none).
final class TracedStorage: DeviceStorage {
  let type: TensorType
  init(_ type: TensorType) { self.type = type }

  /// Throws when `storage` is a traced value: a host read inside a compiled function cannot be
  /// replayed (the program has no host step), so it is refused where it happens.
  static func checkReadable(_ storage: any DeviceStorage, type: TensorType) throws {
    guard storage is TracedStorage else { return }
    throw TensorError(
      op: "compile", operands: [type],
      "a value computed inside a compiled function is read on the host while it is traced; a compiled step cannot depend on its own values on the host: return the value as an output and read it after the call, or pass the number in as a step scalar (StepScalars)")
  }
}
