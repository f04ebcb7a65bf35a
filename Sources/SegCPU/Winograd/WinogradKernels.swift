import CDNNL
import SegCore

// MARK: - The Winograd candidate of the CPU kernel table

extension CPUBackend {
  /// "winograd": 3x3 stride-1 f32 convolutions, their backward-data and backward-filter by
  /// Winograd F(4x4,3x3), tried before "onednn". Declines every other convolution, and the ones the
  /// algorithm in force (`ConvAlgorithm`) gives to oneDNN's direct convolution.
  static func registerWinogradKernels(in table: inout KernelTable) {
    table.register(Conv2D.self, "winograd") { op, inputs, output in
      try WinogradKernels.forward(op, inputs, output)
    }
    table.register(Conv2DBackwardData.self, "winograd") { op, inputs, output in
      try WinogradKernels.backwardData(op, inputs, output)
    }
    table.register(Conv2DBackwardFilter.self, "winograd") { op, inputs, output in
      try WinogradKernels.backwardFilter(op, inputs, output)
    }
  }
}

/// Conv2D and Conv2DBackwardData through `WinogradConvolution`, Conv2DBackwardFilter through
/// `WinogradFilterGradient`, activations in nChw16c.
enum WinogradKernels {
  /// conv2d: x [N,H,W,C], filter [3,3,C,O], optional bias [O]; ReLU when the op has it fused.
  /// nil (declined) unless Winograd applies and the algorithm in force picks it.
  static func forward(_ op: Conv2D, _ inputs: [Operand], _ output: TensorType) throws -> CPUStorage? {
    guard inputs.allSatisfy({ $0.type.dtype == .f32 }), accepts(op.geometry, filter: inputs[1].type.shape) else { return nil }
    let (x, f) = (inputs[0].type.shape, inputs[1].type.shape)
    let y = output.shape
    guard x.count > 0, y.count > 0 else { return nil }
    let p = WinogradProblem(
      n: x[0], c: x[3], h: x[1], w: x[2], o: f[3], oh: y[1], ow: y[2],
      padTop: op.geometry.padding.top, padLeft: op.geometry.padding.left)
    guard chooses(p, .forward, from: x, to: y) else { return nil }
    return try run(op.kind.rawValue, p, inputs[0], filter: inputs[1], rotated: false, bias: inputs.count == 3 ? inputs[2] : nil,
                   relu: op.activation == .relu, output)
  }

  /// conv2dBackwardData: dy [N,OH,OW,O], filter [3,3,C,O] -> dx [N,H,W,C], as a forward
  /// Winograd convolution of dy with the rotated, channel-swapped filter, padded by 2 - pad.
  static func backwardData(_ op: Conv2DBackwardData, _ inputs: [Operand], _ output: TensorType) throws -> CPUStorage? {
    guard inputs.allSatisfy({ $0.type.dtype == .f32 }), accepts(op.geometry, filter: inputs[1].type.shape) else { return nil }
    let (dy, f) = (inputs[0].type.shape, inputs[1].type.shape)
    let dx = output.shape
    guard dy.count > 0, dx.count > 0 else { return nil }
    let p = WinogradProblem(
      n: dy[0], c: f[3], h: dy[1], w: dy[2], o: f[2], oh: dx[1], ow: dx[2],
      padTop: 2 - op.geometry.padding.top, padLeft: 2 - op.geometry.padding.left)
    guard chooses(p, .backwardData, from: dy, to: dx) else { return nil }
    return try run(op.kind.rawValue, p, inputs[0], filter: inputs[1], rotated: true, bias: nil, relu: false, output)
  }

  /// conv2dBackwardFilter: x [N,H,W,C], dy [N,OH,OW,O] -> dw [3,3,C,O] row-major (as the
  /// optimizer reads it). nil (declined) unless Winograd applies and the algorithm in force picks it.
  static func backwardFilter(_ op: Conv2DBackwardFilter, _ inputs: [Operand], _ output: TensorType) throws -> CPUStorage? {
    guard inputs.allSatisfy({ $0.type.dtype == .f32 }), accepts(op.geometry, filter: output.shape) else { return nil }
    let (x, dy) = (inputs[0].type.shape, inputs[1].type.shape)
    guard x.count > 0, dy.count > 0 else { return nil }
    let p = WinogradProblem(
      n: x[0], c: x[3], h: x[1], w: x[2], o: dy[3], oh: dy[1], ow: dy[2],
      padTop: op.geometry.padding.top, padLeft: op.geometry.padding.left)
    guard chooses(p, .backwardFilter, from: x, to: dy) else { return nil }
    let name = op.kind.rawValue
    let storages = try inputs.map { try CPUBackend.cpuStorage($0.storage, op: name) }
    return try withDNNLErrors(op: name, inputs.map(\.type)) {
      let xm = try storages[0].memory(Layout(Layout.make([p.n, p.c, p.h, p.w], dnnl_aBcd16b)), role: .activation)
      let dym = try storages[1].memory(Layout(Layout.make([p.n, p.o, p.oh, p.ow], dnnl_aBcd16b)), role: .activation)
      let dg = HostBuffer.output(0, byteCount: 9 * p.c * p.o * 4)
      withExtendedLifetime((xm, dym)) {
        WinogradFilterGradient.run(
          p, x: xm.buffer.pointer.assumingMemoryBound(to: Float.self), dy: dym.buffer.pointer.assumingMemoryBound(to: Float.self),
          dg: dg.pointer.assumingMemoryBound(to: Float.self))
      }
      return CPUStorage(plain: dg, type: output)
    }
  }

  // MARK: Shared

  /// Winograd F(4x4,3x3) computes 3x3 filters at stride 1 (any padding).
  private static func accepts(_ g: ConvGeometry, filter: Shape) -> Bool {
    g.strideH == 1 && g.strideW == 1 && filter[0] == 3 && filter[1] == 3 && filter.count > 0
  }

  /// Whether the algorithm in force picks Winograd for `p` in `direction`, recorded (by the
  /// shapes `from` and `to`) for the benchmark and `--profile`.
  private static func chooses(_ p: WinogradProblem, _ direction: ConvDirection, from: Shape, to: Shape) -> Bool {
    let use: Bool
    switch ConvAlgorithm.current {
    case .direct: use = false
    case .winograd: use = true
    case .auto: use = ConvAlgorithm.prefersWinograd(p, direction)
    }
    ConvAlgorithmLog.record(direction, from, to, winograd: use)
    return use
  }

  /// Runs the problem on `source` (an activation) in nChw16c, writing a new nChw16c output.
  private static func run(
    _ name: String, _ p: WinogradProblem, _ source: Operand, filter: Operand, rotated: Bool, bias: Operand?, relu: Bool,
    _ output: TensorType
  ) throws -> CPUStorage {
    let storages = try [source, filter].map { try CPUBackend.cpuStorage($0.storage, op: name) }
    return try withDNNLErrors(op: name, [source.type, filter.type]) {
      let u = try WinogradPhases.clock.time(.filter) {
        try WinogradFilterCache.filter(for: storages[1], rotated: rotated, scratch: KernelScratch.current)
      }
      let biasValues: [Float]? = try bias.map { b in
        let buffer = try CPUBackend.cpuStorage(b.storage, op: name).plainBuffer()
        return withExtendedLifetime(buffer) {
          Array(UnsafeBufferPointer(start: buffer.pointer.assumingMemoryBound(to: Float.self), count: p.o))
        }
      }
      let x = try storages[0].memory(Layout(Layout.make([p.n, p.c, p.h, p.w], dnnl_aBcd16b)), role: .activation)
      let y = try DNNLMemory.output(0, Layout(Layout.make([p.n, p.o, p.oh, p.ow], dnnl_aBcd16b)))
      withExtendedLifetime(x) {
        WinogradConvolution.run(
          p, x: x.buffer.pointer.assumingMemoryBound(to: Float.self), filter: u, bias: biasValues, relu: relu,
          y: y.buffer.pointer.assumingMemoryBound(to: Float.self))
      }
      return try CPUStorage(y, role: .activation, type: output)
    }
  }
}
