import Foundation

// MARK: - Replay

extension Program {
  /// Runs the instructions on `inputs` with the backend's kernels, in order, each value let go at
  /// its last use as planned; returns the outputs as leaves (nothing to differentiate: the program
  /// already holds its backward ops). `scalars` give the bound attributes their values. On a
  /// backend with arenas each planned value is written at its offset in the program's arena
  /// (made at the first replay), so the intermediate values allocate nothing.
  /// A program made with a capture (`CompiledFunction`'s `capture`) on a backend that captures
  /// graphs replays as one graph launch instead (`ProgramCapture`).
  public func run(_ inputs: [Tensor], scalars: StepScalars = [:]) throws -> [Tensor] {
    if let capture { return try capture.run(self, inputs, scalars: scalars) }
    return try runUncaptured(inputs, scalars: scalars)
  }

  /// `run` with each kernel launched from the host, in order; outputs whose inputs were donated
  /// (`donations`) are offered their input's buffer (`InPlaceOutputs`).
  func runUncaptured(_ inputs: [Tensor], scalars: StepScalars) throws -> [Tensor] {
    var slots = try inputSlots(inputs)
    let plan = memoryPlan
    let shared = arena
    let window = try plan.flatMap { $0.arenaBytes > 0 ? try shared.acquire(bytes: $0.arenaBytes, on: backend) : nil }
    defer { if window != nil { shared.release() } }
    // A buffer passed as two inputs is donated by neither: writing one would change the other.
    let passed = inputs.map { ObjectIdentifier($0.node.storage as AnyObject) }
    let donated = donations.filter { _, i in passed.filter { $0 == passed[i] }.count == 1 }
    let inPlace = donated.isEmpty ? [:] : inPlaceUpdates(donated).mapValues { InPlaceOutputs($0.mapValues { inputs[$0].node.storage }) }
    try execute(&slots, arena: window?.arena, base: window?.base ?? 0, scalars: scalars, profiler: OpProfiler.active, inPlace: inPlace)
    return outputs.map { s in
      Tensor(node: Node(op: nil, inputs: [], type: values[s].type, backend: backend, storage: slots[s]!))
    }
  }

  /// The slots with the inputs' and the constants' buffers in place, after checking the inputs.
  func inputSlots(_ inputs: [Tensor]) throws -> [(any DeviceStorage)?] {
    guard inputs.count == self.inputs.count else {
      throw TensorError(op: "compile", operands: inputs.map(\.type), "the program takes \(self.inputs.count) inputs, got \(inputs.count)")
    }
    var slots = [(any DeviceStorage)?](repeating: nil, count: values.count)
    for (x, s) in zip(inputs, self.inputs) {
      guard x.type == values[s].type, x.backend === backend else {
        throw TensorError(op: "compile", operands: [x.type], "input of \(values[s].type) on \(backend.name) expected; the program was traced for other inputs")
      }
      slots[s] = x.node.storage
    }
    for (s, v) in values.enumerated() {
      if case .constant(let storage) = v.source { slots[s] = storage }
    }
    return slots
  }

  /// Runs every instruction on `slots`, the planned values and each kernel's scratch placed in
  /// `arena` when given, at their planned offsets from `base`; with
  /// `deviceScalars`, each bound attribute is offered to its kernel as a word of that buffer
  /// (`StepScalarPlacement`), and one no kernel took refuses the capture under way; `inPlace`
  /// offers an instruction (by position) the buffers it may write its outputs into (`InPlaceOutputs`).
  func execute(
    _ slots: inout [(any DeviceStorage)?], arena placed: (any DeviceArena)?, base: Int = 0, scalars: StepScalars,
    profiler: OpProfiler?, deviceScalars: (buffer: any DeviceStorage, words: [String: Int])? = nil,
    inPlace: [Int: InPlaceOutputs] = [:]
  ) throws {
    let kernels = backend.kernels
    let plan = memoryPlan
    for (position, ins) in instructions.enumerated() {
      let types = ins.outputs.map { values[$0].type }
      var placement: OutputPlacement?
      if let placed, let plan {
        let regions = ins.outputs.map { s in
          plan.offsets[s].map { OutputPlacement.Region(arena: placed, offset: base + $0, bytes: plan.sizes[s]!) }
        }
        if regions.contains(where: { $0 != nil }) { placement = OutputPlacement(regions, types: types) }
      }
      let op = ins.bindings.isEmpty ? ins.op : try rebind(ins.op, ins.bindings, scalars)
      let operands = ins.inputs.map { Operand(storage: slots[$0]!, type: values[$0].type) }
      let scratch = placed.flatMap { arena in
        plan?.scratch[position].map { KernelScratch(OutputPlacement.Region(arena: arena, offset: base + $0.offset, bytes: $0.bytes)) }
      }
      let into = inPlace[position]
      let run = { try kernels.run(op, operands, outputs: types, placement: placement) }
      let results: [any DeviceStorage] = try KernelScratch.$current.withValue(scratch) {
        if let profiler { return try profiler.measure(op.kind, output: types[0], on: backend, run) }
        guard let deviceScalars, !ins.bindings.isEmpty else { return try InPlaceOutputs.$current.withValue(into, operation: run) }
        var words: [ScalarBinding.Attribute: Int] = [:]
        for b in ins.bindings { words[b.attribute] = deviceScalars.words[b.scalar] }
        let scalarPlacement = StepScalarPlacement(buffer: deviceScalars.buffer, words: words)
        let results = try StepScalarPlacement.$current.withValue(scalarPlacement) {
          try InPlaceOutputs.$current.withValue(into, operation: run)
        }
        if let attribute = scalarPlacement.untaken.first {
          throw CaptureRefusal(reason: "the \(op.kind.rawValue) kernel does not read its \(attribute.rawValue) from the device, so the step scalar would be frozen in the graph")
        }
        return results
      }
      for (s, r) in zip(ins.outputs, results) { slots[s] = r }
      for s in ins.frees { slots[s] = nil }
    }
  }

  /// For each instruction that makes carried outputs (output position -> input position of the
  /// function, `carried`) whose inputs are read by nothing after it (nor through a view, nor
  /// returned), the output position -> input position it may write into: a captured graph's input
  /// buffer then holds the new value at the end, with no copy back; an uncaptured replay writes
  /// the new value over the donated input (`CompiledFunction.donated`).
  func inPlaceUpdates(_ carried: [Int: Int]) -> [Int: [Int: Int]] {
    var lastRead = [Int](repeating: -1, count: values.count)
    for (i, ins) in instructions.enumerated() { for s in ins.inputs { lastRead[aliasRoot(s)] = i } }
    let returned = Set(outputs.map(aliasRoot))
    var producer: [Int: (instruction: Int, output: Int)] = [:]
    for (i, ins) in instructions.enumerated() { for (o, s) in ins.outputs.enumerated() { producer[s] = (i, o) } }
    var result: [Int: [Int: Int]] = [:]
    for (j, i) in carried {
      let input = inputs[i], output = outputs[j]
      guard values[input].aliasOf == nil, !returned.contains(input), let (at, o) = producer[output],
        lastRead[input] <= at, inputs.filter({ $0 == input }).count == 1,
        instructions[at].inputs.filter({ $0 == input }).count <= 1,
        values[input].type == values[output].type
      else { continue }
      result[at, default: [:]][o] = i
    }
    return result
  }
}
