// MARK: - Public functions

/// Max pooling over windows with no padding (the floor of partial windows is dropped):
/// x [N,H,W,C] -> [N,(H-KH)/SH+1,(W-KW)/SW+1,C].
public func maxPool2d(_ x: Tensor, window: (Int, Int) = (2, 2), strides: (Int, Int) = (2, 2)) throws -> Tensor {
  try Tensor.apply(MaxPool2D(windowH: window.0, windowW: window.1, strideH: strides.0, strideW: strides.1), [x])
}

/// The gradient of max pooling: each window's dy goes to the first maximum of x in that window
/// (row-major order), summed where windows overlap. x [N,H,W,C], dy [N,OH,OW,C] -> [N,H,W,C].
public func maxPool2dBackward(
  _ x: Tensor, _ dy: Tensor, window: (Int, Int) = (2, 2), strides: (Int, Int) = (2, 2)
) throws -> Tensor {
  try Tensor.apply(
    MaxPool2DBackward(pool: MaxPool2D(windowH: window.0, windowW: window.1, strideH: strides.0, strideW: strides.1)),
    [x, dy])
}

// MARK: - MaxPool2D

/// Max pooling, valid padding.
public struct MaxPool2D: Primitive, Hashable {
  public let windowH, windowW, strideH, strideW: Int
  public static let kinds: [OpKind] = [.maxPool2d]
  public var description: String { "maxPool2d(window \(windowH)x\(windowW), strides \(strideH)x\(strideW))" }

  public init(windowH: Int, windowW: Int, strideH: Int, strideW: Int) {
    (self.windowH, self.windowW, self.strideH, self.strideW) = (windowH, windowW, strideH, strideW)
  }

  /// Whether a pixel can lie in two windows (a stride shorter than the window): kernels that give
  /// each window's gradient to its own pixels alone need this false.
  public var windowsOverlap: Bool { strideH < windowH || strideW < windowW }

  /// Output type for an NHWC input, or an error.
  func pooledType(_ inputs: [TensorType]) throws -> TensorType {
    let x = inputs[0].shape
    guard x.rank == 4 else {
      throw TensorError(op: kind.rawValue, operands: inputs, "expects an NHWC input (rank 4)")
    }
    guard windowH > 0, windowW > 0, strideH > 0, strideW > 0, x[1] >= windowH, x[2] >= windowW else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the \(windowH)x\(windowW) window does not fit the input")
    }
    return TensorType([x[0], (x[1] - windowH) / strideH + 1, (x[2] - windowW) / strideW + 1, x[3]], inputs[0].dtype)
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    _ = try expectSameFloatType(inputs)
    return try pooledType(inputs)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    [try needed[0] ? Tensor.apply(MaxPool2DBackward(pool: self), [inputs[0], cotangent]) : nil]
  }

  /// The flat input index of the first maximum of window (b, i, j, ch), scanning (kh, kw) in
  /// row-major order; the forward and the backward kernel share it so that they agree on ties.
  func argmax(_ x: [Double], _ shape: Shape, _ b: Int, _ i: Int, _ j: Int, _ ch: Int) -> Int {
    let (h, w, c) = (shape[1], shape[2], shape[3])
    var best = ((b * h + i * strideH) * w + j * strideW) * c + ch
    for u in 0..<windowH {
      for v in 0..<windowW {
        let idx = ((b * h + i * strideH + u) * w + j * strideW + v) * c + ch
        // Strictly greater, so a tie keeps the earlier one; a NaN wins so that it shows in the output.
        if x[idx] > x[best] || (x[idx].isNaN && !x[best].isNaN) { best = idx }
      }
    }
    return best
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles
    let (n, oh, ow, c) = (output.shape[0], output.shape[1], output.shape[2], output.shape[3])
    var out = [Double](repeating: 0, count: output.shape.count)
    for b in 0..<n {
      for i in 0..<oh {
        for j in 0..<ow {
          for ch in 0..<c { out[((b * oh + i) * ow + j) * c + ch] = x[argmax(x, inputs[0].shape, b, i, j, ch)] }
        }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - MaxPool2DBackward

/// Routes dy to the first maximum of each window of x. Inputs x [N,H,W,C], dy [N,OH,OW,C].
public struct MaxPool2DBackward: Primitive {
  public let pool: MaxPool2D
  public static let kinds: [OpKind] = [.maxPool2dBackward]
  public var description: String { "maxPool2dBackward(\(pool))" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 2)
    let dtype = try expectSameFloatType(inputs)
    let pooled = try pool.pooledType([inputs[0]])
    guard pooled.shape == inputs[1].shape else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the gradient must have the pooled shape \(pooled.shape)")
    }
    return TensorType(inputs[0].shape, dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard needed.contains(true) else { return [nil, nil] }
    throw TensorError(op: kind.rawValue, "second-order gradients through max pooling are not supported")
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let x = inputs[0].doubles, dy = inputs[1].doubles
    let ds = inputs[1].shape
    let (n, oh, ow, c) = (ds[0], ds[1], ds[2], ds[3])
    var out = [Double](repeating: 0, count: output.shape.count)
    for b in 0..<n {
      for i in 0..<oh {
        for j in 0..<ow {
          for ch in 0..<c {
            // Overlapping windows may pick the same pixel: their gradients add up.
            out[pool.argmax(x, inputs[0].shape, b, i, j, ch)] += dy[((b * oh + i) * ow + j) * c + ch]
          }
        }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}
