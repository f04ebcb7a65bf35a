import Foundation

// MARK: - The first run

extension Program {
  /// Runs the traced program once on `inputs` (the compiled function's first call) and writes down
  /// what only running tells: the buffer each kernel made for each value (its bytes with layout
  /// padding, which the memory plan reserves), the scratch each kernel asked for
  /// (`KernelScratch`), which outputs are views of an input, which
  /// concats the backend laid out as their inputs' bytes in turn (`ConcatInPlace`), and which
  /// inputs a kernel may write its output over (`WriteInPlace`). Each value is
  /// let go at its last use, so the run holds no more than the program's live values; the arena
  /// is made at the next call, from the plan.
  ///
  /// The kernels are the replay's, given the same operands, so the outputs equal every later
  /// replay's.
  mutating func firstRun(_ inputs: [Tensor], scalars: StepScalars) throws -> [Tensor] {
    var slots = try inputSlots(inputs)
    for s in values.indices {
      if let storage = slots[s] { values[s].footprint = backend.footprint(of: storage) }
    }
    let last = lastUses()
    let kernels = backend.kernels
    let profiler = OpProfiler.active
    for (i, ins) in instructions.enumerated() {
      let types = ins.outputs.map { values[$0].type }
      let op = ins.bindings.isEmpty ? ins.op : try rebind(ins.op, ins.bindings, scalars)
      let operands = ins.inputs.map { Operand(storage: slots[$0]!, type: values[$0].type) }
      let scratch = KernelScratch(nil)
      let results: [any DeviceStorage] = try KernelScratch.$current.withValue(scratch) {
        guard let profiler else { return try kernels.run(op, operands, outputs: types) }
        try backend.synchronize()
        let start = DispatchTime.now().uptimeNanoseconds
        let results = try kernels.run(op, operands, outputs: types)
        try backend.synchronize()
        profiler.add(op.kind, output: types[0], seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        return results
      }
      instructions[i].scratchBytes = scratch.requestedBytes
      for (s, r) in zip(ins.outputs, results) {
        slots[s] = r
        let footprint = backend.footprint(of: r)
        values[s].footprint = footprint
        // A kernel that returned a view of an input: the plan keeps the input's bytes while the
        // view lives. The inputs are still held, so their buffers' identities are their own.
        values[s].aliasOf = footprint.flatMap { f in ins.inputs.first { values[$0].footprint?.memory == f.memory } }
      }
      if let writer = backend as? any InPlaceWriting, results.count == 1 {
        let allowed = ins.inputs.indices.filter { writer.mayOverwrite(slots[ins.inputs[$0]]!, operand: $0, with: results[0], kind: op.kind) }
        instructions[i].overwritable = Array(Set(allowed.map { ins.inputs[$0] })).sorted()
      }
      if let concat = ins.op as? Concat, ins.outputs.count == 1 {
        instructions[i].contiguousConcat = backend.concatenatesContiguously(
          ins.inputs.map { slots[$0]! }, into: slots[ins.outputs[0]]!, axis: concat.axis)
      }
      for s in Set(ins.inputs) where last[s] == i { slots[s] = nil }
      for s in ins.outputs where last[s] == nil { slots[s] = nil }
    }
    return try outputs.map { s in
      guard let storage = slots[s] else {
        throw TensorError(op: "compile", operands: [values[s].type], "output %\(s) of the program was never computed")
      }
      return Tensor(node: Node(op: nil, inputs: [], type: values[s].type, backend: backend, storage: storage))
    }
  }
}
