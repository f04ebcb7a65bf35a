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
      KernelNames.name("adam", gradient.type.dtype), count: vectorItems(n, gradient.type.dtype),
      arguments: (x.map(\.pointer) + results.map(\.pointer)).map { .pointer($0) } + [
        .int64(Int64(n)), .float(Float(c.beta1)), .float(Float(c.beta2)), .float(Float(1 - c.beta1)),
        .float(Float(1 - c.beta2)), .float(Float(c.epsilon)), .float(Float(c.stepSize)),
      ])
    return results
  }
}
