import SegCore

// MARK: - The kernel table

extension CUDABackend {
  /// Every kernel of the backend, registered once per primitive type: "cuda" for the NVRTC
  /// kernels (the fused Adam update included), "cudnn-graph" (cuDNN's graph API, which declines
  /// shapes it has no plan for) then "cudnn" (the legacy API) for the convolutions when cuDNN is there.
  /// Each kernel function takes its op with its own type; one that declines (nil) leaves the table
  /// to name every candidate and the operands in its error.
  func makeKernelTable() -> KernelTable {
    var table = KernelTable(backendName: name)

    /// Registers `kernel`, a method of the backend, as candidate `candidate` for ops of type `P`.
    func add<P: Primitive>(
      _ type: P.Type, as candidate: String = "cuda",
      _ kernel: @escaping (CUDABackend) -> (P, [DeviceOperand], TensorType) throws -> CUDAStorage?
    ) {
      table.register(type, candidate) { [unowned self] op, inputs, output in
        try self.inLayouts(op.kind, try self.deviceOperands(inputs, op.kind), output) { try kernel(self)(op, $0, output) }
      }
    }

    add(Binary.self, CUDABackend.binary)
    add(Unary.self, CUDABackend.unary)
    add(ReLU.self, CUDABackend.relu)
    add(ReLUBackward.self, CUDABackend.reluBackward)
    add(Sum.self, CUDABackend.sum)
    add(BroadcastTo.self, CUDABackend.broadcastTo)
    add(Softmax.self, CUDABackend.softmax)
    add(Reshape.self, CUDABackend.reshape)
    add(Concat.self, CUDABackend.concat)
    add(Slice.self, CUDABackend.slice)
    add(Pad.self, CUDABackend.pad)
    add(PadBackward.self, CUDABackend.padBackward)
    // The skip connection in one launch each way; as the separate ops for tensors of 2^32
    // elements or more, which the kernels' 32-bit indices do not reach.
    table.register(CropConcat.self, "cuda") { [unowned self] op, inputs, output in
      if let y = try self.cropConcat(op, try self.deviceOperands(inputs, op.kind).map(self.rowMajor), output) { return y }
      return try op.runSeparately(inputs, output: output, with: self.kernels)
    }
    table.registerOutputs(CropConcatBackward.self, "cuda") { [unowned self] op, inputs, outputs in
      if let ys = try self.cropConcatBackward(op, try self.deviceOperands(inputs, op.kind).map(self.rowMajor), outputs) { return ys }
      return try op.runSeparately(inputs, outputs: outputs, with: self.kernels)
    }
    add(Cast.self, CUDABackend.cast)
    add(RandomMask.self, CUDABackend.randomMask)
    add(ArgMax.self, CUDABackend.argmax)
    add(OneHot.self, CUDABackend.oneHot)
    add(MaxPool2D.self, CUDABackend.maxPool)
    // A fused elementwise op is one generated kernel (Backend/FusedOps.swift).
    table.register(FusedElementwise.self, "cuda") { [unowned self] op, inputs, output in
      try self.fusedInLayouts(op, inputs, output)
    }
    add(MaxPool2DBackward.self, CUDABackend.maxPoolBackward)
    // An encoder output's gradient from its pool and its skip in one launch (windows that do not
    // overlap); else as the separate ops.
    table.register(SkipGradient.self, "cuda") { [unowned self] op, inputs, output in
      if let y = try self.skipGradient(op, try self.deviceOperands(inputs, op.kind).map(self.rowMajor), output) { return y }
      return try op.runSeparately(inputs, output: output, with: self.kernels)
    }
    table.registerOutputs(AdamUpdate.self, "cuda") { [unowned self] op, inputs, _ in
      try self.adamUpdate(op, try self.deviceOperands(inputs, op.kind).map(self.rowMajor))
    }
    table.registerOutputs(MultiTensorAdam.self, "cuda") { [unowned self] op, inputs, _ in
      try self.multiTensorAdamInLayouts(op, try self.deviceOperands(inputs, op.kind))
    }

    if let graph = graphConvolutions {
      add(Conv2D.self, as: "cudnn-graph") { b in { try graph.conv2d(b, $0, $1, $2) } }
      add(Conv2DBackwardData.self, as: "cudnn-graph") { b in { try graph.conv2dBackwardData(b, $0, $1, $2) } }
      add(Conv2DBackwardFilter.self, as: "cudnn-graph") { b in { try graph.conv2dBackwardFilter(b, $0, $1, $2) } }
    }
    if let convolutions {
      add(Conv2D.self, as: "cudnn") { b in { try convolutions.conv2d(b, $0, $1, $2) } }
      add(Conv2DBackwardData.self, as: "cudnn") { b in { try convolutions.conv2dBackwardData(b, $0, $1, $2) } }
      add(Conv2DBackwardFilter.self, as: "cudnn") { b in { try convolutions.conv2dBackwardFilter(b, $0, $1, $2) } }
    }
    return table
  }

  /// The operands' device buffers; an error for a buffer of another backend or device.
  private func deviceOperands(_ inputs: [Operand], _ kind: OpKind) throws -> [DeviceOperand] {
    try inputs.map { operand in
      let s = try cudaStorage(operand.storage, op: kind.rawValue)
      return DeviceOperand(pointer: s.pointer, type: operand.type, storage: s)
    }
  }
}
