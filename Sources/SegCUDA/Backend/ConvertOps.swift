import SegCore

// MARK: - Type, random and label ops

extension CUDABackend {
  /// cast between any two dtypes (a copy for the same dtype).
  func cast(_ op: Cast, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let y = try output(out)
    let from = x[0].type.dtype
    if from == out.dtype {
      try device.copy(from: x[0].pointer, to: y.pointer, bytes: y.bytes)
      return y
    }
    let n = out.shape.count
    // The kernel converts 16 bytes of the smaller type per thread.
    let perThread = 16 / min(from.byteSize, out.dtype.byteSize)
    try device.launch(
      try KernelLibrary.handle(.cast, from, out.dtype), count: (n + perThread - 1) / perThread,
      arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(n))])
    return y
  }

  /// randomMask: element i kept when RandomMask.bits(seed, offset + i) < keepProbability * 2^24;
  /// nil for a dtype that is not floating.
  func randomMask(_ p: RandomMask, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard KernelNames.floats.contains(out.dtype) else { return nil }
    let y = try output(out)
    let n = out.shape.count
    // In a captured step the seed is a step scalar's word in device memory (`StepScalarPlacement`).
    if let at = StepScalarPlacement.take(.randomMaskSeed) {
      let words = try cudaStorage(at.buffer, op: "randomMask")
      try device.launch(
        try KernelLibrary.handle(.randomMaskAt, out.dtype), count: n,
        arguments: [
          .pointer(y.pointer), .int64(Int64(n)), .pointer(words.pointer + UInt64(8 * at.word)), .uint64(p.offset),
          .double(p.keepProbability * 16_777_216.0), .double(1 / p.keepProbability),
        ])
      return y
    }
    try device.launch(
      try KernelLibrary.handle(.randomMask, out.dtype), count: n,
      arguments: [
        .pointer(y.pointer), .int64(Int64(n)), .uint64(p.seed), .uint64(p.offset),
        .double(p.keepProbability * 16_777_216.0), .double(1 / p.keepProbability),
      ])
    return y
  }

  /// argmax along an axis of any dtype, to i32.
  func argmax(_ p: ArgMax, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let dims = x[0].type.shape.dims
    let n = dims[p.axis], inner = dims[(p.axis + 1)...].reduce(1, *), outer = dims[..<p.axis].reduce(1, *)
    let y = try output(out)
    try device.launch(
      try KernelLibrary.handle(.argmax, x[0].type.dtype), count: outer * inner,
      arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(outer)), .int64(Int64(n)), .int64(Int64(inner))])
    return y
  }

  /// oneHot of i32 or u8 labels; a label outside 0..<classes fails as the reference, naming the
  /// first one and its index (the kernel records the smallest bad index). Nil for labels that are
  /// neither i32 nor u8.
  func oneHot(_ p: OneHot, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    let labels = x[0]
    guard labels.type.dtype == .i32 || labels.type.dtype == .u8 else { return nil }
    let count = labels.type.shape.count
    let y = try output(out)
    let firstBad = try output(TensorType([1], .f64))  // 8 bytes: a UInt64 index
    try device.fill(firstBad.pointer, byte: 0xFF, bytes: 8)
    try device.launch(
      try KernelLibrary.handle(.oneHot, labels.type.dtype, out.dtype), count: count * p.classes,
      arguments: [
        .pointer(labels.pointer), .pointer(y.pointer), .int64(Int64(count)), .int64(Int64(p.classes)),
        .pointer(firstBad.pointer),
      ])
    var bad = UInt64.max
    try withUnsafeMutableBytes(of: &bad) { try device.download(firstBad.pointer, into: $0) }
    if bad != UInt64.max {
      let i = Int(bad)
      var label: Int
      if labels.type.dtype == .i32 {
        var v: Int32 = 0
        try withUnsafeMutableBytes(of: &v) { try device.download(labels.pointer + UInt64(4 * i), into: $0) }
        label = Int(v)
      } else {
        var v: UInt8 = 0
        try withUnsafeMutableBytes(of: &v) { try device.download(labels.pointer + UInt64(i), into: $0) }
        label = Int(v)
      }
      throw TensorError(
        op: "oneHot", operands: [labels.type], "label \(label) at index \(i) is outside 0..<\(p.classes)")
    }
    return y
  }
}

// MARK: - Pooling

extension CUDABackend {
  /// maxPool2d on NHWC: one thread per output element; nil for operands that are not of the
  /// output's floating dtype.
  func maxPool(_ p: MaxPool2D, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
    let y = try output(out)
    try device.launch(
      try KernelLibrary.handle(.maxPool2d, dtype), count: out.shape.count,
      arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64s(poolGeometry(p, x[0].type.shape, out.shape))])
    return y
  }

  /// maxPool2dBackward (x, dy): one thread per window and 16-byte vector of channels where windows
  /// do not overlap (as `skipGradient`), else one per input element, gathering from its windows;
  /// nil for operands that are not of the output's floating dtype.
  func maxPoolBackward(_ p: MaxPool2DBackward, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    guard let dtype = floatType(x, out) else { return nil }
    let y = try output(out)
    let perWindow = !p.pool.windowsOverlap && out.shape.count < 1 << 32
    try device.launch(
      try KernelLibrary.handle(.maxPool2dBackward, dtype),
      count: perWindow ? Self.poolCellItems(p.pool, out.shape, skipChannels: 0, dtype) : out.shape.count,
      arguments: [
        .pointer(x[0].pointer), .pointer(x[1].pointer), .pointer(y.pointer),
        .int64s(poolGeometry(p.pool, x[0].type.shape, x[1].type.shape)),
      ])
    return y
  }

  /// skipGradient (x, dy, g): `skipGradient_<dtype>`, one thread per stride cell and 16-byte
  /// vector of channels (per channel when the channel counts are not whole vectors); nil where
  /// windows overlap (a pixel of two windows), an operand has 2^32 elements or more, or an operand
  /// is not of the output's floating dtype: the separate ops run then.
  func skipGradient(_ p: SkipGradient, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage? {
    let pool = p.pool
    guard let dtype = floatType(x, out), !pool.windowsOverlap, x.allSatisfy({ $0.type.shape.count < 1 << 32 })
    else { return nil }
    let (xs, g) = (x[0].type.shape, x[2].type.shape)
    let window = CropWindow(crop: g, whole: xs)
    let y = try output(out)
    let items = Self.poolCellItems(pool, xs, skipChannels: p.channels, dtype)
    guard items > 0 else { return y }
    try device.launch(
      try KernelLibrary.handle(.skipGradient, dtype), count: items,
      arguments: [
        .pointer(x[0].pointer), .pointer(x[1].pointer), .pointer(x[2].pointer), .pointer(y.pointer),
        .int64s(poolGeometry(pool, xs, x[1].type.shape) + [g[1], g[2], p.channels, window.top, window.left, p.reluBackward ? 1 : 0]),
      ])
    return y
  }

  /// The threads of a per-window kernel over `input` [N,H,W,C]: one per stride cell and 16-byte
  /// vector of channels when C and `skipChannels` (where the skip's channels start) are whole
  /// vectors, else per channel (as the kernel's own check).
  private static func poolCellItems(_ pool: MaxPool2D, _ input: Shape, skipChannels: Int, _ dtype: DType) -> Int {
    let cells = input[0] * ((input[1] + pool.strideH - 1) / pool.strideH) * ((input[2] + pool.strideW - 1) / pool.strideW)
    let v = vectorLength(dtype)
    return cells * (input[3] % v == 0 && skipChannels % v == 0 ? input[3] / v : input[3])
  }

  /// The kernels' Pool struct: (n, h, w, c, oh, ow, kh, kw, sh, sw).
  private func poolGeometry(_ p: MaxPool2D, _ input: Shape, _ pooled: Shape) -> [Int] {
    [input[0], input[1], input[2], input[3], pooled[1], pooled[2], p.windowH, p.windowW, p.strideH, p.strideW]
  }
}
