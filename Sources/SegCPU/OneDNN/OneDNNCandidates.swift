import SegCore

// MARK: - The oneDNN candidates of the CPU kernel table

extension CPUBackend {
  /// "blocked": crops, zero pads, channel concats and adds (a fused bias add and ReLU too) of
  /// tensors in oneDNN's blocked layouts, kept in those layouts, and per-channel sums (bias
  /// gradients) read in them (`BlockedKernels`).
  /// Each declines operands it does not take (row-major ones among them), which the Swift kernel
  /// then computes.
  static func registerBlockedKernels(in table: inout KernelTable) {
    table.register(Slice.self, "blocked", blocked { op, s, out in try BlockedKernels.slice(op, s[0], out) })
    table.register(Pad.self, "blocked", blocked { op, s, out in try BlockedKernels.pad(op, s[0], out) })
    table.register(Concat.self, "blocked", blocked { op, s, out in try BlockedKernels.concat(op, s, out) })
    table.register(Sum.self, "blocked", blocked { op, s, out in try BlockedKernels.channelSum(op, s[0], out) })
    let add: (Binary, [Operand], TensorType) throws -> (any DeviceStorage)? = blocked { _, s, out in
      try BlockedKernels.add(s[0], s[1], out)
    }
    table.register(Binary.self, "blocked") { op, inputs, output in
      // Only the add: the other functions go straight to the Swift kernel.
      op.function == .add ? try add(op, inputs, output) : nil
    }
    table.register(FusedElementwise.self, "blocked", blocked { op, s, out in try BlockedKernels.fusedAdd(op, s, out) })
    table.register(SkipGradient.self, "blocked", blocked { op, s, out in try BlockedKernels.skipGradient(op, s, out) })
  }

  /// "onednn": convolutions, max pooling and ReLU in f32, and in bf16 (f32 accumulation) on
  /// processors with AVX-512 BF16, in the layouts oneDNN picks. Operands of other dtypes are
  /// declined: ReLU's then go to its Swift kernel, and the others have none, so the table's error
  /// names the op and its operands.
  static func registerOneDNNKernels(in table: inout KernelTable) {
    table.register(Conv2D.self, "onednn", oneDNN(ConvKernels.forward))
    table.register(Conv2DBackwardData.self, "onednn", oneDNN(ConvKernels.backwardData))
    table.register(Conv2DBackwardFilter.self, "onednn", oneDNN(ConvKernels.backwardFilter))
    table.register(MaxPool2D.self, "onednn", oneDNN { op, s, out in try PoolingKernels.forward(op, s[0], out) })
    table.register(MaxPool2DBackward.self, "onednn", oneDNN { op, s, out in
      try PoolingKernels.backward(op, s[0], s[1], out)
    })
    table.register(ReLU.self, "onednn", oneDNN { _, s, out in try ReLUKernels.forward(s[0], out) })
    table.register(ReLUBackward.self, "onednn", oneDNN { _, s, out in try ReLUKernels.backward(s[0], s[1], out) })
  }

  // MARK: Adapters

  /// A table kernel running `kernel` on the operands' CPU storages, nil where it declines.
  private static func blocked<P: Primitive>(
    _ kernel: @escaping (P, [CPUStorage], TensorType) throws -> CPUStorage?
  ) -> (P, [Operand], TensorType) throws -> (any DeviceStorage)? {
    { op, inputs, output in
      let storages = try inputs.map { try cpuStorage($0.storage, op: op.kind.rawValue) }
      return try withDNNLErrors(op: op.kind.rawValue, inputs.map(\.type)) { try kernel(op, storages, output) }
    }
  }

  /// A table kernel running oneDNN's `kernel` on f32 operands, or bf16 ones where the processor
  /// has bf16 arithmetic (`CPUFeatures`), declining every other dtype.
  private static func oneDNN<P: Primitive>(
    _ kernel: @escaping (P, [CPUStorage], TensorType) throws -> CPUStorage
  ) -> (P, [Operand], TensorType) throws -> (any DeviceStorage)? {
    { op, inputs, output in
      let types = inputs.map(\.type)
      let dtype = output.dtype
      guard dtype == .f32 || (dtype == .bf16 && CPUFeatures.current.bf16Convolutions),
            types.allSatisfy({ $0.dtype == dtype }) else { return nil }
      let storages = try inputs.map { try cpuStorage($0.storage, op: op.kind.rawValue) }
      return try withDNNLErrors(op: op.kind.rawValue, types) { try kernel(op, storages, output) }
    }
  }
}
