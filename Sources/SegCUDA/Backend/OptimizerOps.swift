import SegCore

// MARK: - Fused Adam

extension CUDABackend {
  /// One `adam_<gradient dtype>` kernel over p, m, v and g into three new buffers p', m', v' (f32
  /// master weights and moments; gradients in f32, f16 or bf16); nil for other operands.
  func adamUpdate(_ op: AdamUpdate, _ x: [DeviceOperand]) throws -> [CUDAStorage]? {
    let (parameter, m, v, gradient) = (x[0], x[1], x[2], x[3])
    let type = TensorType(parameter.type.shape, .f32)
    guard [parameter, m, v].allSatisfy({ $0.type == type }), gradient.type.shape == type.shape,
      OptimizerKernels.gradientTypes.contains(gradient.type.dtype)
    else { return nil }
    let c = op.constants
    let results = try (0..<3).map { _ in try output(type) }
    let n = type.shape.count
    try device.launch(
      try KernelLibrary.handle(.adam, gradient.type.dtype), count: vectorItems(n, gradient.type.dtype),
      arguments: (x.map(\.pointer) + results.map(\.pointer)).map { .pointer($0) } + [
        .int64(Int64(n)), .float(Float(c.beta1)), .float(Float(c.beta2)), .float(Float(1 - c.beta1)),
        .float(Float(1 - c.beta2)), .float(Float(c.epsilon)), .float(Float(c.stepSize)),
      ])
    return results
  }
}

// MARK: - The whole optimizer step

extension CUDABackend {
  /// `multiTensorAdam` in three launches over a device table of the parameters' buffers
  /// (`OptimizerKernels.multiTensorBody`), one upload of the table, and no host read: the loss
  /// scaler's decision, Adam's step count and the step's losses stay in the state (`StepState`).
  /// Nil unless every parameter, m and v is f32 and the gradients share one dtype of `adam`'s.
  /// Outputs that `InPlaceOutputs` allows are written over the buffers it names (a weight or
  /// moment over itself: each element is read before it is written, by the same thread).
  func multiTensorAdam(_ op: MultiTensorAdam, _ x: [DeviceOperand]) throws -> [CUDAStorage]? {
    let n = op.tensors
    let stateType = TensorType([StepState.count], .f32)
    guard n > 0, x.count == 3 + 4 * n, x[0].type.dtype == .f32, x[1].type.dtype == .f32, x[2].type == stateType else { return nil }
    let gradientType = x[3 + 3 * n].type.dtype
    guard OptimizerKernels.gradientTypes.contains(gradientType) else { return nil }
    var states: [TensorType] = []
    for i in 0..<n {
      let state = TensorType(x[3 + i].type.shape, .f32)
      guard [x[3 + i], x[3 + n + i], x[3 + 2 * n + i]].allSatisfy({ $0.type == state }),
        x[3 + 3 * n + i].type == TensorType(state.shape, gradientType)
      else { return nil }
      states.append(state)
    }
    // In a captured step the weights, moments, state and half copies are the graph's own buffers.
    let inPlace = InPlaceOutputs.current?.buffers ?? [:]
    func made(_ k: Int, _ t: TensorType) throws -> CUDAStorage {
      if let b = inPlace[k] as? CUDAStorage, b.device === device, b.type == t { return b }
      return try output(t)
    }
    let outputs = try (states + states + states).enumerated().map { k, t in try made(k, t) }
    let stateOut = try made(3 * n, stateType)
    let halves = try op.halfCopy.map { h in try states.enumerated().map { i, t in try made(3 * n + 1 + i, TensorType(t.shape, h)) } }
    // 10 words per parameter: p, m, v, g, pOut, mOut, vOut, n, hOut, hType.
    var words: [UInt64] = []
    words.reserveCapacity(10 * n)
    var vectors = 0
    let halfType: UInt64 = op.halfCopy == .f16 ? 1 : op.halfCopy == .bf16 ? 2 : 0
    for i in 0..<n {
      let count = states[i].shape.count
      words += [x[3 + i], x[3 + n + i], x[3 + 2 * n + i], x[3 + 3 * n + i]].map(\.pointer)
      words += [outputs[i].pointer, outputs[n + i].pointer, outputs[2 * n + i].pointer, UInt64(count)]
      words += [halves?[i].pointer ?? 0, halfType]
      vectors += vectorItems(count, gradientType)
    }
    let table = try output(TensorType([10 * n * 8], .u8))
    try words.withUnsafeBytes { try device.upload($0, to: table.pointer) }
    // Enough work items to keep a GPU's memory busy, few enough for one block to add their sums.
    let parts = min(max(vectors / 64, 1), 65_536)
    let partial = try output(TensorType([2 * parts], .f32))
    try device.launch(
      try KernelLibrary.handle(.adamStats, gradientType), count: parts,
      arguments: [.pointer(table.pointer), .int32(Int32(n)), .pointer(partial.pointer), .int64(Int64(parts))])
    let h = op.hyper
    // In a captured step the learning rate (a warm-up's) is a step scalar in device memory.
    let rateAt = try StepScalarPlacement.take(.multiAdamLearningRate).map {
      try cudaStorage($0.buffer, op: "multiTensorAdam").pointer + UInt64(8 * $0.word)
    }
    try device.launch(
      try KernelLibrary.handle(.adamStatsFinish, .f32), count: GPUKernelDevice.threads,
      arguments: [
        .pointer(partial.pointer), .int64(Int64(parts)), .pointer(x[0].pointer), .pointer(x[1].pointer),
        .pointer(x[2].pointer), .pointer(stateOut.pointer), .float(Float(op.weightDecay / 2)), .int32(Int32(op.growthInterval)),
        .double(h.learningRate), .pointer(rateAt ?? 0), .double(h.beta1), .double(h.beta2),
      ])
    try device.launch(
      try KernelLibrary.handle(.multiAdam, gradientType), count: vectors,
      arguments: [
        .pointer(table.pointer), .int32(Int32(n)), .pointer(stateOut.pointer), .float(Float(op.weightDecay)),
        .float(Float(h.beta1)), .float(Float(h.beta2)), .float(Float(1 - h.beta1)), .float(Float(1 - h.beta2)),
        .float(Float(h.epsilon)),
      ])
    return outputs + [stateOut] + (halves ?? [])
  }
}
