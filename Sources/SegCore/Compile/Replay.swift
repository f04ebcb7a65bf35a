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

  /// `run` with each kernel launched from the host, in order.
  func runUncaptured(_ inputs: [Tensor], scalars: StepScalars) throws -> [Tensor] {
    var slots = try inputSlots(inputs)
    let plan = memoryPlan
    let shared = arena
    let placed = try plan.flatMap { $0.arenaBytes > 0 ? try shared.acquire(bytes: $0.arenaBytes, on: backend) : nil }
    defer { if placed != nil { shared.release() } }
    try execute(&slots, arena: placed, scalars: scalars, profiler: OpProfiler.active)
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

  /// Runs every instruction on `slots`, the planned values placed in `arena` when given; with
  /// `deviceScalars`, each bound attribute is offered to its kernel as a word of that buffer
  /// (`StepScalarPlacement`), and one no kernel took refuses the capture under way; `inPlace`
  /// offers an instruction (by position) the buffers it may write its outputs into (`InPlaceOutputs`).
  func execute(
    _ slots: inout [(any DeviceStorage)?], arena placed: (any DeviceArena)?, scalars: StepScalars,
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
          plan.offsets[s].map { OutputPlacement.Region(arena: placed, offset: $0, bytes: plan.sizes[s]!) }
        }
        if regions.contains(where: { $0 != nil }) { placement = OutputPlacement(regions, types: types) }
      }
      let op = ins.bindings.isEmpty ? ins.op : try rebind(ins.op, ins.bindings, scalars)
      let operands = ins.inputs.map { Operand(storage: slots[$0]!, type: values[$0].type) }
      let results: [any DeviceStorage]
      let into = inPlace[position]
      if let profiler {
        results = try profiler.measure(op.kind, output: types[0], on: backend) {
          try kernels.run(op, operands, outputs: types, placement: placement)
        }
      } else if let deviceScalars, !ins.bindings.isEmpty {
        var words: [ScalarBinding.Attribute: Int] = [:]
        for b in ins.bindings { words[b.attribute] = deviceScalars.words[b.scalar] }
        let scalarPlacement = StepScalarPlacement(buffer: deviceScalars.buffer, words: words)
        results = try StepScalarPlacement.$current.withValue(scalarPlacement) {
          try InPlaceOutputs.$current.withValue(into) {
            try kernels.run(op, operands, outputs: types, placement: placement)
          }
        }
        if let attribute = scalarPlacement.untaken.first {
          throw CaptureRefusal(reason: "the \(op.kind.rawValue) kernel does not read its \(attribute.rawValue) from the device, so the step scalar would be frozen in the graph")
        }
      } else if let into {
        results = try InPlaceOutputs.$current.withValue(into) {
          try kernels.run(op, operands, outputs: types, placement: placement)
        }
      } else {
        results = try kernels.run(op, operands, outputs: types, placement: placement)
      }
      for (s, r) in zip(ins.outputs, results) { slots[s] = r }
      for s in ins.frees { slots[s] = nil }
    }
  }
}
