import SegCore

// MARK: - Fused elementwise ops

extension CUDABackend {
  /// A compiled program's fused elementwise op as one generated kernel (`FusedKernelSource`,
  /// compiled by NVRTC at its first launch and kept): `fused_<hash>(in0, ..., out, n, channels)`.
  /// Where the generator does not cover how an input is read (a general broadcast), or an input
  /// is not floating, the steps run one kernel each, as unfused.
  func fused(_ op: FusedElementwise, _ inputs: [Operand], _ out: TensorType) throws -> any DeviceStorage {
    let x = try inputs.map { try cudaStorage($0.storage, op: "fusedElementwise") }
    guard let kernel = GeneratedKernels.shared.handle(for: op, inputs: inputs.map(\.type)) else {
      return try op.runSteps(inputs, with: kernels)
    }
    let y = try output(out)
    let n = out.shape.count
    try device.launch(
      kernel, count: n,
      arguments: x.map { .pointer($0.pointer) } + [.pointer(y.pointer), .int64(Int64(n)), .int64(Int64(out.shape.dims.last ?? 1))])
    return y
  }
}
