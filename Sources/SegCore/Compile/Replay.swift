import Foundation

// MARK: - Replay

extension Program {
  /// Runs the instructions on `inputs` with the backend's kernels, in order, each value let go at
  /// its last use as planned; returns the outputs as leaves (nothing to differentiate: the program
  /// already holds its backward ops). `scalars` give the bound attributes their values. On a
  /// backend with arenas each planned value is written at its offset in the program's arena
  /// (made at the first replay), so the intermediate values allocate nothing.
  public func run(_ inputs: [Tensor], scalars: StepScalars = [:]) throws -> [Tensor] {
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
    let kernels = backend.kernels
    let profiler = OpProfiler.active
    let plan = memoryPlan
    let shared = arena
    let placed = try plan.flatMap { $0.arenaBytes > 0 ? try shared.acquire(bytes: $0.arenaBytes, on: backend) : nil }
    defer { if placed != nil { shared.release() } }
    for ins in instructions {
      var placement: OutputPlacement?
      if let placed, let plan {
        let regions = ins.outputs.map { s in
          plan.offsets[s].map { OutputPlacement.Region(arena: placed, offset: $0, bytes: plan.sizes[s]!) }
        }
        if regions.contains(where: { $0 != nil }) { placement = OutputPlacement(regions) }
      }
      let op = ins.bindings.isEmpty ? ins.op : try rebind(ins.op, ins.bindings, scalars)
      let operands = ins.inputs.map { Operand(storage: slots[$0]!, type: values[$0].type) }
      let types = ins.outputs.map { values[$0].type }
      let results: [any DeviceStorage]
      if let profiler {
        try backend.synchronize()
        let start = DispatchTime.now().uptimeNanoseconds
        results = try kernels.run(op, operands, outputs: types, placement: placement)
        try backend.synchronize()
        profiler.add(op.kind, output: types[0], seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
      } else {
        results = try kernels.run(op, operands, outputs: types, placement: placement)
      }
      for (s, r) in zip(ins.outputs, results) { slots[s] = r }
      for s in ins.frees { slots[s] = nil }
    }
    return outputs.map { s in
      Tensor(node: Node(op: nil, inputs: [], type: values[s].type, backend: backend, storage: slots[s]!))
    }
  }
}
