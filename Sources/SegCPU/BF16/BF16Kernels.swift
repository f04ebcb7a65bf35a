import SegCore

// MARK: - The bf16 candidates of the CPU kernel table

extension CPUBackend {
  /// "bf16": the Swift arithmetic kernels (elementwise, relu and its gradient, sums, softmax, the
  /// pad gradient, Adam's update on a bf16 gradient) on bf16 operands, each widened to f32,
  /// computed by the f32 kernel and rounded once to bf16: f32 accumulation, as oneDNN's bf16
  /// convolutions and a GPU's bf16 kernels do. Tried before "swift"; declines when no operand and
  /// no output is bf16. Copies, casts and layout moves take bf16 as they are (their Swift kernels
  /// move bytes).
  static func registerBF16Kernels(in table: inout KernelTable) {
    table.register(Binary.self, "bf16", widened(binaryKernel))
    table.register(Unary.self, "bf16", widened(unaryKernel))
    table.register(ReLU.self, "bf16", widened(reluKernel))
    table.register(ReLUBackward.self, "bf16", widened(reluBackwardKernel))
    table.register(Sum.self, "bf16", widened(sumKernel))
    table.register(Softmax.self, "bf16", widened(softmaxKernel))
    table.register(PadBackward.self, "bf16", widened(padBackwardKernel))
    // Adam on a bf16 gradient: widened, then the f32 update (the weights and moments stay f32).
    table.registerOutputs(AdamUpdate.self, "bf16") { op, inputs, _ in
      guard inputs.count == 4, inputs[3].type.dtype == .bf16 else { return nil }
      let g = inputs[3]
      let buffer = try withDNNLErrors(op: op.kind.rawValue, inputs.map(\.type)) {
        try cpuStorage(g.storage, op: op.kind.rawValue).plainBuffer()
      }
      let wide = TensorType(g.type.shape, .f32)
      let gradient = Operand(
        storage: CPUStorage(plain: BF16Conversion.widen(buffer, count: g.type.shape.count), type: wide), type: wide)
      return try adamUpdate(parameter: inputs[0], m: inputs[1], v: inputs[2], gradient: gradient, op.constants)
        .map { [$0.parameter, $0.m, $0.v] }
    }
  }

  /// A table kernel running the f32 Swift kernel `kernel` on bf16 operands widened to f32, its
  /// f32 result rounded to bf16 when the output is bf16; nil when nothing is bf16.
  private static func widened<P: Primitive>(
    _ kernel: @escaping PlainKernel<P>
  ) -> (P, [Operand], TensorType) throws -> (any DeviceStorage)? {
    { op, inputs, output in
      let types = inputs.map(\.type)
      guard output.dtype == .bf16 || types.contains(where: { $0.dtype == .bf16 }) else { return nil }
      let name = op.kind.rawValue
      let buffers = try inputs.map { operand in
        try withDNNLErrors(op: name, types) { try cpuStorage(operand.storage, op: name).plainBuffer() }
      }
      let wide = zip(types, buffers).map { type, buffer in
        type.dtype == .bf16 ? BF16Conversion.widen(buffer, count: type.shape.count) : buffer
      }
      let operands = zip(types, wide).map { type, buffer in
        PlainOperand(type: TensorType(type.shape, type.dtype == .bf16 ? .f32 : type.dtype), pointer: UnsafeRawPointer(buffer.pointer))
      }
      let count = output.shape.count
      let out = HostBuffer.output(0, byteCount: count * output.dtype.byteSize)
      if output.dtype == .bf16 {
        let f32 = HostBuffer(byteCount: count * 4)
        try withExtendedLifetime((buffers, wide)) {
          try kernel(op, operands, PlainOutput(type: TensorType(output.shape, .f32), pointer: f32.pointer))
        }
        BF16Conversion.round(f32, into: out, count: count)
      } else {
        try withExtendedLifetime((buffers, wide)) {
          try kernel(op, operands, PlainOutput(type: output, pointer: out.pointer))
        }
      }
      return CPUStorage(plain: out, type: output)
    }
  }
}

// MARK: - Conversions

/// Row-major bf16 <-> f32 conversions over whole buffers, split across threads.
enum BF16Conversion {
  /// A new f32 buffer holding `count` bf16 values of `buffer` (exact: bf16 is f32's top half).
  static func widen(_ buffer: HostBuffer, count: Int) -> HostBuffer {
    let wide = HostBuffer(byteCount: count * 4)
    widen(buffer, into: wide, count: count)
    return wide
  }

  /// Writes `count` bf16 values of `buffer` as f32 into `wide`.
  static func widen(_ buffer: HostBuffer, into wide: HostBuffer, count: Int) {
    let x = buffer.pointer.assumingMemoryBound(to: UInt16.self)
    let y = wide.pointer.assumingMemoryBound(to: UInt32.self)
    Parallel.forEach(count, grain: Parallel.defaultGrain) { r in
      for i in r { y[i] = UInt32(x[i]) << 16 }
    }
  }

  /// Rounds `count` f32 values of `f32` to nearest even bf16 into `out`.
  static func round(_ f32: HostBuffer, into out: HostBuffer, count: Int) {
    let x = f32.pointer.assumingMemoryBound(to: Float.self)
    let y = out.pointer.assumingMemoryBound(to: UInt16.self)
    Parallel.forEach(count, grain: Parallel.defaultGrain) { r in
      for i in r { y[i] = BFloat16.fromFloat(x[i]) }
    }
  }
}
