import SegCore

// MARK: - Fused Adam

extension CUDABackend {
  /// One `adam_<gradient dtype>` kernel over p, m, v and g into three new buffers (f32 master
  /// weights and moments; gradients in f32, f16 or bf16).
  func adamUpdate(
    parameter: Operand, m: Operand, v: Operand, gradient: Operand, _ c: AdamConstants
  ) throws -> (parameter: any DeviceStorage, m: any DeviceStorage, v: any DeviceStorage)? {
    let type = TensorType(parameter.type.shape, .f32)
    guard [parameter, m, v].allSatisfy({ $0.type == type }), gradient.type.shape == type.shape,
      OptimizerKernels.gradientTypes.contains(gradient.type.dtype)
    else { return nil }
    let inputs = try [parameter, m, v, gradient].map { try cudaStorage($0.storage, op: "adam") }
    let outputs = try (0..<3).map { _ in try output(type) }
    let n = type.shape.count
    try device.launch(
      KernelNames.name("adam", gradient.type.dtype), count: n,
      arguments: (inputs + outputs).map { .pointer($0.pointer) } + [
        .int64(Int64(n)), .float(Float(c.beta1)), .float(Float(c.beta2)), .float(Float(1 - c.beta1)),
        .float(Float(1 - c.beta2)), .float(Float(c.epsilon)), .float(Float(c.stepSize)),
      ])
    return (outputs[0], outputs[1], outputs[2])
  }
}
