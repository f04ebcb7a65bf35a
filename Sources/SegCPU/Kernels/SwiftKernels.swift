import SegCore

// MARK: - The Swift candidates of the CPU kernel table

extension CPUBackend {
  /// "swift": the Swift kernels over row-major buffers, one per primitive type that has one (the
  /// convolutions and pooling have only oneDNN's), tried last. Each reorders blocked operands to
  /// row-major first; arithmetic kernels compute in f32 or f64 and throw on other dtypes (cast
  /// first), copies and casts take every dtype.
  static func registerSwiftKernels(in table: inout KernelTable) {
    // Elementwise (Elementwise.swift); relu and reluBackward for the dtypes oneDNN declines.
    table.register(Binary.self, "swift", plain(binaryKernel))
    table.register(Unary.self, "swift", plain(unaryKernel))
    table.register(ReLU.self, "swift", plain(reluKernel))
    table.register(ReLUBackward.self, "swift", plain(reluBackwardKernel))
    // Reductions and copies (Reduce.swift, Copy.swift).
    table.register(Sum.self, "swift", plain(sumKernel))
    table.register(BroadcastTo.self, "swift", plain(broadcastToKernel))
    table.register(Reshape.self, "swift", plain(reshapeKernel))
    // Softmax (Softmax.swift).
    table.register(Softmax.self, "swift", plain(softmaxKernel))
    // Layout (Layout.swift).
    table.register(Concat.self, "swift", plain(concatKernel))
    table.register(Slice.self, "swift", plain(sliceKernel))
    table.register(Pad.self, "swift", plain(padKernel))
    table.register(PadBackward.self, "swift", plain(padBackwardKernel))
    // The skip connection's crop and concat, and its gradient, as the separate ops above run them
    // (in oneDNN's blocked layouts where they apply).
    table.register(CropConcat.self, "swift") { op, inputs, output in
      try op.runSeparately(inputs, output: output, with: CPUBackend.shared.kernels)
    }
    table.registerOutputs(CropConcatBackward.self, "swift") { op, inputs, outputs in
      try op.runSeparately(inputs, outputs: outputs, with: CPUBackend.shared.kernels)
    }
    // Random, type and label ops (Convert.swift).
    table.register(RandomMask.self, "swift", plain(randomMaskKernel))
    table.register(Cast.self, "swift", plain(castKernel))
    table.register(ArgMax.self, "swift", plain(argmaxKernel))
    table.register(OneHot.self, "swift", plain(oneHotKernel))
    // The fused Adam update (Adam.swift), three outputs; it declines gradients other than f32.
    table.registerOutputs(AdamUpdate.self, "swift") { op, inputs, _ in
      try adamUpdate(parameter: inputs[0], m: inputs[1], v: inputs[2], gradient: inputs[3], op.constants)
        .map { [$0.parameter, $0.m, $0.v] }
    }
    // The whole optimizer step as one op (MultiTensorAdam.swift).
    table.registerOutputs(MultiTensorAdam.self, "swift") { op, inputs, outputs in try multiTensorAdam(op, inputs, outputs) }
    // An encoder output's gradient from its pool and its skip, which the compiler joins only where
    // the skip is one op (not on the CPU): "separate", the ops it joins, by the kernels above and
    // oneDNN's pooling backward (so at oneDNN's dtypes).
    table.register(SkipGradient.self, "separate") { op, inputs, output in
      try op.runSeparately(inputs, output: output, with: CPUBackend.shared.kernels)
    }
    // Elementwise chains the compiler fused (Fused.swift), then each step by the kernels above.
    table.register(FusedElementwise.self, "swift") { op, inputs, output in
      try FusedKernel.run(op, inputs, output) ?? op.runSteps(inputs, with: CPUBackend.shared.kernels)
    }
  }

  // MARK: Running a Swift kernel

  /// A table kernel running the Swift kernel `kernel` on row-major views of the inputs and a fresh
  /// row-major output.
  private static func plain<P: Primitive>(
    _ kernel: @escaping PlainKernel<P>
  ) -> (P, [Operand], TensorType) throws -> (any DeviceStorage)? {
    { op, inputs, output in
      let types = inputs.map(\.type)
      let buffers = try inputs.map { operand in
        try withDNNLErrors(op: op.kind.rawValue, types) {
          try cpuStorage(operand.storage, op: op.kind.rawValue).plainBuffer()
        }
      }
      let out = HostBuffer.output(0, byteCount: output.shape.count * output.dtype.byteSize)
      try withExtendedLifetime(buffers) {
        try kernel(
          op, zip(types, buffers).map { PlainOperand(type: $0, pointer: UnsafeRawPointer($1.pointer)) },
          PlainOutput(type: output, pointer: out.pointer))
      }
      return CPUStorage(plain: out, type: output)
    }
  }
}
