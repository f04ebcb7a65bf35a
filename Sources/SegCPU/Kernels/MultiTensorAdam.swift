import SegCore

// MARK: - The whole optimizer step as one op

extension CPUBackend {
  /// `multiTensorAdam` on row-major copies of its operands, through the op's own formula
  /// (`MultiTensorAdam.referenceOutputs`, f32 with one rounding per operation). The CPU trainer
  /// does not ask for it (`multiTensorOptimizer` is false: on the host the per-parameter kernels
  /// cost no launch or synchronisation), so it is there for completeness and conformance.
  static func multiTensorAdam(_ op: MultiTensorAdam, _ inputs: [Operand], _ outputs: [TensorType]) throws -> [any DeviceStorage]? {
    guard inputs.allSatisfy({ [DType.f32, .f16, .bf16].contains($0.type.dtype) }) else { return nil }
    let hosts = try inputs.map { o -> HostTensor in
      let buffer = try withDNNLErrors(op: op.kind.rawValue, inputs.map(\.type)) {
        try cpuStorage(o.storage, op: op.kind.rawValue).plainBuffer()
      }
      let n = o.type.shape.count
      func values<T>(_: T.Type) -> [T] {
        withExtendedLifetime(buffer) { Array(UnsafeBufferPointer(start: buffer.pointer.assumingMemoryBound(to: T.self), count: n)) }
      }
      switch o.type.dtype {
      case .f16: return try HostTensor(shape: o.type.shape, data: .f16(values(Float16.self)))
      case .bf16: return try HostTensor(shape: o.type.shape, data: .bf16(values(UInt16.self)))
      default: return try HostTensor(shape: o.type.shape, data: .f32(values(Float.self)))
      }
    }
    return try op.referenceOutputs(hosts, outputs: outputs).map { host in
      let out = HostBuffer(byteCount: host.type.shape.count * host.type.dtype.byteSize)
      func write<T>(_ a: [T]) { a.withUnsafeBytes { out.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
      // f32 outputs, and with `halfCopy` the parameters' f16 or bf16 copies.
      switch host.data {
      case .f16(let a): write(a)
      case .bf16(let a): write(a)
      default: write(host.floats as [Float])
      }
      return CPUStorage(plain: out, type: host.type)
    }
  }
}
