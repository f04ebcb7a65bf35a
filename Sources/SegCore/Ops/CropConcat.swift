// MARK: - Public functions

/// The U-Net's skip connection as one op: `a` [N,H,W,Ca] beside the centre H x W window of `skip`
/// [N,Hs,Ws,Cs] (as `centerCrop` cuts it), along the channels -> [N,H,W,Ca+Cs]; one dtype, any.
/// The same values as `concat([a, centerCrop(skip, ...)])`, written in one pass, and its gradient
/// is one `cropConcatBackward`.
public func cropConcat(_ a: Tensor, _ skip: Tensor) throws -> Tensor {
  try Tensor.apply(CropConcat(), [a, skip])
}

/// The gradient of `cropConcat` in one op: g [N,H,W,C] -> (g's first `channels` channels,
/// [N,H,W,channels]; the rest zero-padded about the centre to `skipHeight` x `skipWidth`,
/// [N,skipHeight,skipWidth,C-channels]). Not differentiable.
public func cropConcatBackward(_ g: Tensor, channels: Int, skipHeight: Int, skipWidth: Int) throws -> (a: Tensor, skip: Tensor) {
  let r = try Tensor.applyOutputs(CropConcatBackward(channels: channels, skipHeight: skipHeight, skipWidth: skipWidth), [g])
  return (r[0], r[1])
}

// MARK: - The window

/// Where the centre window of an Hs x Ws skip starts for an H x W output: ((Hs - H) / 2,
/// (Ws - W) / 2), rounded down, as `centerCrop`.
public struct CropWindow: Sendable, Equatable {
  public let top: Int
  public let left: Int

  /// The window of an H x W crop (`crop`) of an Hs x Ws image (`whole`), both NHWC shapes.
  public init(crop: Shape, whole: Shape) {
    (top, left) = ((whole[1] - crop[1]) / 2, (whole[2] - crop[2]) / 2)
  }

  /// The window's starts in `whole` (NHWC), for `slice`.
  func starts() -> [Int] { [0, top, left, 0] }

  /// The zero padding that puts a tensor of `crop`'s height and width back in its window of `whole`.
  static func padding(crop: Shape, whole: Shape) -> Pad {
    let w = CropWindow(crop: crop, whole: whole)
    return Pad(before: w.starts(), after: [0, whole[1] - crop[1] - w.top, whole[2] - crop[2] - w.left, 0], mode: .zero)
  }
}

// MARK: - CropConcat

/// The fused centre crop and channel concat of the skip connection (`cropConcat`).
public struct CropConcat: Primitive {
  public static let kinds: [OpKind] = [.cropConcat]

  public init() {}

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 2)
    let (a, s) = (inputs[0].shape, inputs[1].shape)
    guard a.rank == 4, s.rank == 4 else {
      throw TensorError(op: "cropConcat", operands: inputs, "expects two NHWC tensors (rank 4)")
    }
    guard inputs[0].dtype == inputs[1].dtype else {
      throw TensorError(op: "cropConcat", operands: inputs, "operands must share one dtype; use cast(_:to:)")
    }
    guard a[0] == s[0], a[1] <= s[1], a[2] <= s[2] else {
      throw TensorError(
        op: "cropConcat", operands: inputs,
        "the skip must have the batch of the first operand and be at least its height and width")
    }
    return TensorType(Shape([a[0], a[1], a[2], a[3] + s[3]]), inputs[0].dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    let (a, s) = (inputs[0].shape, inputs[1].shape)
    switch (needed[0], needed[1]) {
    case (_, true):
      // One op even when only the skip's gradient is wanted: its slice and pad would be two.
      let r = try cropConcatBackward(g, channels: a[3], skipHeight: s[1], skipWidth: s[2])
      return [needed[0] ? r.a : nil, r.skip]
    case (true, false):
      return [try slice(g, starts: [0, 0, 0, 0], sizes: a.dims), nil]
    case (false, false):
      return [nil, nil]
    }
  }

  /// The VJP needs only the inputs' types.
  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let (a, s) = (inputs[0].shape, inputs[1].shape)
    let (av, sv) = (inputs[0].doubles, inputs[1].doubles)
    let w = CropWindow(crop: a, whole: s)
    var out: [Double] = []
    out.reserveCapacity(output.shape.count)
    for n in 0..<a[0] {
      for y in 0..<a[1] {
        for x in 0..<a[2] {
          let pa = ((n * a[1] + y) * a[2] + x) * a[3]
          let ps = ((n * s[1] + y + w.top) * s[2] + x + w.left) * s[3]
          out.append(contentsOf: av[pa..<(pa + a[3])])
          out.append(contentsOf: sv[ps..<(ps + s[3])])
        }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - CropConcatBackward

/// The gradient of `cropConcat` (`cropConcatBackward`): the cotangent split at `channels`, the
/// second part zero-padded back to the skip's height and width; two outputs.
public struct CropConcatBackward: Primitive {
  /// The first operand's channels (the split).
  public let channels: Int
  public let skipHeight: Int
  public let skipWidth: Int
  public static let kinds: [OpKind] = [.cropConcatBackward]
  public var description: String { "cropConcatBackward(channels: \(channels), skip: \(skipHeight)x\(skipWidth))" }

  public init(channels: Int, skipHeight: Int, skipWidth: Int) {
    (self.channels, self.skipHeight, self.skipWidth) = (channels, skipHeight, skipWidth)
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType { try outputTypes(inputs)[0] }

  public func outputTypes(_ inputs: [TensorType]) throws -> [TensorType] {
    try expectOperands(inputs, 1)
    let g = inputs[0].shape
    guard g.rank == 4 else {
      throw TensorError(op: "cropConcatBackward", operands: inputs, "expects an NHWC gradient (rank 4)")
    }
    guard (0...g[3]).contains(channels), skipHeight >= g[1], skipWidth >= g[2] else {
      throw TensorError(
        op: "cropConcatBackward", operands: inputs,
        "cannot split \(g[3]) channels at \(channels) and pad \(g[1])x\(g[2]) to \(skipHeight)x\(skipWidth)")
    }
    let d = inputs[0].dtype
    return [TensorType([g[0], g[1], g[2], channels], d), TensorType([g[0], skipHeight, skipWidth, g[3] - channels], d)]
  }

  /// A gradient's gradient is never asked for: this op runs inside the backward pass.
  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard !needed.contains(true) else {
      throw TensorError(op: kind.rawValue, operands: inputs.map(\.type), "has no gradient (an op of two outputs)")
    }
    return [nil]
  }

  public func vjpReads(input index: Int) -> Bool { false }
  public var vjpReadsOutput: Bool { false }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    try referenceOutputs(inputs, outputs: outputTypes(inputs.map(\.type)))[0]
  }

  public func referenceOutputs(_ inputs: [HostTensor], outputs: [TensorType]) throws -> [HostTensor] {
    let g = inputs[0].shape, gv = inputs[0].doubles
    let (ga, gs) = (outputs[0].shape, outputs[1].shape)
    let w = CropWindow(crop: ga, whole: gs)
    var a = [Double](repeating: 0, count: ga.count), s = [Double](repeating: 0, count: gs.count)
    for n in 0..<g[0] {
      for y in 0..<g[1] {
        for x in 0..<g[2] {
          let pg = ((n * g[1] + y) * g[2] + x) * g[3]
          let pa = ((n * ga[1] + y) * ga[2] + x) * ga[3]
          let ps = ((n * gs[1] + y + w.top) * gs[2] + x + w.left) * gs[3]
          for c in 0..<ga[3] { a[pa + c] = gv[pg + c] }
          for c in 0..<gs[3] { s[ps + c] = gv[pg + ga[3] + c] }
        }
      }
    }
    return [HostTensor(type: outputs[0], doubles: a), HostTensor(type: outputs[1], doubles: s)]
  }
}

// MARK: - Running as the separate ops with a backend's own kernels

extension CropConcat {
  /// The output computed as the crop (`slice`) then the `concat` it fuses, with `kernels` (a
  /// backend's own table), the output placed where the caller asked (`OutputPlacement.current`)
  /// and the crop in a buffer of its own: for operands a backend's own kernel does not take.
  public func runSeparately(_ inputs: [Operand], output: TensorType, with kernels: KernelTable) throws -> any DeviceStorage {
    let placement = OutputPlacement.current
    let (a, s) = (inputs[0].type.shape, inputs[1].type.shape)
    let crop = Slice(starts: CropWindow(crop: a, whole: s).starts(), sizes: [s[0], a[1], a[2], s[3]])
    let cropType = TensorType(Shape(crop.sizes), output.dtype)
    let cropped = try kernels.run(crop, [inputs[1]], cropType, placement: nil)
    return try kernels.run(Concat(axis: 3), [inputs[0], Operand(storage: cropped, type: cropType)], output, placement: placement)
  }
}

extension CropConcatBackward {
  /// The outputs computed as the channel slices and the zero pad it fuses, with `kernels` (as
  /// `CropConcat.runSeparately`), each output placed where the caller asked.
  public func runSeparately(_ inputs: [Operand], outputs: [TensorType], with kernels: KernelTable) throws -> [any DeviceStorage] {
    let placement = OutputPlacement.current
    /// Output `k`'s region alone, for the kernel that makes it.
    func placed(_ k: Int) -> OutputPlacement? { placement?.take(k, bytes: 0).map { OutputPlacement([$0], types: [outputs[k]]) } }
    let g = inputs[0].type.shape
    let (ga, gs) = (outputs[0].shape, outputs[1].shape)
    let a = try kernels.run(Slice(starts: [0, 0, 0, 0], sizes: ga.dims), inputs, outputs[0], placement: placed(0))
    let cropType = TensorType([g[0], g[1], g[2], gs[3]], outputs[1].dtype)
    let cropped = try kernels.run(Slice(starts: [0, 0, 0, channels], sizes: cropType.shape.dims), inputs, cropType, placement: nil)
    let padding = CropWindow.padding(crop: ga, whole: gs)
    let s = try kernels.run(padding, [Operand(storage: cropped, type: cropType)], outputs[1], placement: placed(1))
    return [a, s]
  }
}

extension KernelTable {
  /// The one output of `op`, placed as `placement` says (nil: not placed, whatever the caller's).
  fileprivate func run(_ op: any Primitive, _ inputs: [Operand], _ output: TensorType, placement: OutputPlacement?) throws -> any DeviceStorage {
    try OutputPlacement.$current.withValue(placement) { try run(op, inputs, outputs: [output])[0] }
  }
}
