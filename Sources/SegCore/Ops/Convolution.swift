// MARK: - Attributes

/// Explicit zero padding of the two spatial axes, in pixels.
public struct Padding2D: Hashable, Sendable, CustomStringConvertible {
  public var top, bottom, left, right: Int
  public init(top: Int, bottom: Int, left: Int, right: Int) {
    (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
  }
  /// No padding.
  public static let zero = Padding2D(top: 0, bottom: 0, left: 0, right: 0)
  public var description: String { "(\(top),\(bottom),\(left),\(right))" }
}

/// How a convolution pads: none, TensorFlow's 'same' (output = ceil(input / stride), the extra pixel
/// at the bottom/right), or explicit.
public enum ConvPadding: Hashable, Sendable {
  case valid, same
  case explicit(Padding2D)

  /// The explicit padding for one input of `size` (h, w), kernel (kh, kw) and strides (sh, sw).
  public func resolve(input: (Int, Int), kernel: (Int, Int), strides: (Int, Int)) -> Padding2D {
    switch self {
    case .valid: return .zero
    case .explicit(let p): return p
    case .same:
      func split(_ n: Int, _ k: Int, _ s: Int) -> (Int, Int) {
        let total = max(((n + s - 1) / s - 1) * s + k - n, 0)
        return (total / 2, total - total / 2)
      }
      let (t, b) = split(input.0, kernel.0, strides.0)
      let (l, r) = split(input.1, kernel.1, strides.1)
      return Padding2D(top: t, bottom: b, left: l, right: r)
    }
  }
}

/// An activation fused into a conv's output.
public enum FusedActivation: Hashable, Sendable { case none, relu }

/// The geometry shared by a convolution and its two backward ops.
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
  /// (vertical, horizontal) strides.
  public var strides: (Int, Int) { (strideH, strideW) }
  public let strideH, strideW: Int
  public let padding: Padding2D

  public init(strides: (Int, Int), padding: Padding2D) {
    (strideH, strideW) = strides
    self.padding = padding
  }

  /// Output spatial size of a forward conv of kernel (kh, kw) over input (h, w); nil if empty.
  public func outputSize(input: (Int, Int), kernel: (Int, Int)) -> (Int, Int)? {
    let h = input.0 + padding.top + padding.bottom - kernel.0
    let w = input.1 + padding.left + padding.right - kernel.1
    guard h >= 0, w >= 0 else { return nil }
    return (h / strideH + 1, w / strideW + 1)
  }

  /// What makes this geometry unusable (a stride below 1, a negative padding), or nil when it is fine.
  public var problem: String? {
    if strideH < 1 || strideW < 1 { return "strides must be positive, got (\(strideH),\(strideW))" }
    if min(padding.top, padding.bottom, padding.left, padding.right) < 0 {
      return "padding must not be negative, got \(padding)"
    }
    return nil
  }

  public var description: String { "strides (\(strideH),\(strideW)), padding \(padding)" }
}

/// Rejects strides below 1 before anything divides by them.
func checkStrides(_ strides: (Int, Int), op: String, operands: [TensorType]) throws {
  guard strides.0 >= 1, strides.1 >= 1 else {
    throw TensorError(op: op, operands: operands, "strides must be positive, got (\(strides.0),\(strides.1))")
  }
}

// MARK: - Public functions

/// 2-D convolution (cross-correlation). x: [N,H,W,C], filter: [KH,KW,C,O], bias: [O];
/// output [N,OH,OW,O], with the activation applied after the bias.
public func conv2d(
  _ x: Tensor, _ filter: Tensor, bias: Tensor? = nil, strides: (Int, Int) = (1, 1),
  padding: ConvPadding = .valid, activation: FusedActivation = .none
) throws -> Tensor {
  guard x.shape.rank == 4, filter.shape.rank == 4 else {
    throw TensorError(op: "conv2d", operands: [x.type, filter.type], "expects NHWC input and HWIO filter (rank 4)")
  }
  try checkStrides(strides, op: "conv2d", operands: [x.type, filter.type])
  let pad = padding.resolve(input: (x.shape[1], x.shape[2]), kernel: (filter.shape[0], filter.shape[1]), strides: strides)
  let op = Conv2D(geometry: ConvGeometry(strides: strides, padding: pad), activation: activation)
  return try Tensor.apply(op, bias.map { [x, filter, $0] } ?? [x, filter])
}

/// Transposed convolution as Keras's Conv2DTranspose (the adjoint of conv2d).
/// x: [N,H,W,Cin], filter: [KH,KW,Cout,Cin] (Keras's layout), bias: [Cout]. Output [N,H*s,W*s,Cout]
/// with 'same' padding, [N,(H-1)*s+KH,(W-1)*s+KW,Cout] with 'valid'.
public func conv2dTranspose(
  _ x: Tensor, _ filter: Tensor, bias: Tensor? = nil, strides: (Int, Int) = (2, 2),
  padding: ConvPadding = .same, activation: FusedActivation = .none
) throws -> Tensor {
  guard x.shape.rank == 4, filter.shape.rank == 4 else {
    throw TensorError(op: "conv2dTranspose", operands: [x.type, filter.type], "expects NHWC input and HWIO filter (rank 4)")
  }
  let operands = [x.type, filter.type] + (bias.map { [$0.type] } ?? [])
  try checkStrides(strides, op: "conv2dTranspose", operands: operands)
  // Checked here so that the message names this op, not the backward-data op it runs.
  guard x.shape[3] == filter.shape[3] else {
    throw TensorError(
      op: "conv2dTranspose", operands: operands,
      "input has \(x.shape[3]) channels, the [KH,KW,Cout,Cin] filter expects \(filter.shape[3])")
  }
  if let bias, bias.shape != [filter.shape[2]] {
    throw TensorError(op: "conv2dTranspose", operands: operands, "bias must have shape [\(filter.shape[2])]")
  }
  let (kh, kw) = (filter.shape[0], filter.shape[1])
  let (h, w) = (x.shape[1], x.shape[2])
  let outH: Int, outW: Int
  switch padding {
  case .same: (outH, outW) = (h * strides.0, w * strides.1)
  case .valid: (outH, outW) = ((h - 1) * strides.0 + kh, (w - 1) * strides.1 + kw)
  case .explicit(let p):
    (outH, outW) = ((h - 1) * strides.0 + kh - p.top - p.bottom, (w - 1) * strides.1 + kw - p.left - p.right)
  }
  guard outH >= 1, outW >= 1 else {
    throw TensorError(op: "conv2dTranspose", operands: operands, "the padding leaves an empty \(outH)x\(outW) output")
  }
  // The forward conv this is the adjoint of maps [outH, outW] back to [h, w].
  let pad = padding.resolve(input: (outH, outW), kernel: (kh, kw), strides: strides)
  var y = try conv2dBackwardData(
    x, filter, inputSize: (outH, outW), geometry: ConvGeometry(strides: strides, padding: pad))
  if let bias { y = try y + bias }
  if activation == .relu { y = try relu(y) }
  return y
}

/// The gradient of conv2d with respect to its input: dy [N,OH,OW,O], filter [KH,KW,C,O]
/// -> [N,H,W,C] with (H, W) = `inputSize`.
public func conv2dBackwardData(
  _ dy: Tensor, _ filter: Tensor, inputSize: (Int, Int), geometry: ConvGeometry
) throws -> Tensor {
  try Tensor.apply(Conv2DBackwardData(geometry: geometry, inputH: inputSize.0, inputW: inputSize.1), [dy, filter])
}

/// The gradient of conv2d with respect to its filter: x [N,H,W,C], dy [N,OH,OW,O]
/// -> [KH,KW,C,O] with (KH, KW) = `kernelSize`.
public func conv2dBackwardFilter(
  _ x: Tensor, _ dy: Tensor, kernelSize: (Int, Int), geometry: ConvGeometry
) throws -> Tensor {
  try Tensor.apply(Conv2DBackwardFilter(geometry: geometry, kernelH: kernelSize.0, kernelW: kernelSize.1), [x, dy])
}

// MARK: - Conv2D

/// Convolution forward: inputs x [N,H,W,C], filter [KH,KW,C,O], optional bias [O].
public struct Conv2D: Primitive {
  public let geometry: ConvGeometry
  public let activation: FusedActivation
  public static let kinds: [OpKind] = [.conv2d]
  public var description: String { "conv2d(\(geometry), activation \(activation))" }

  public init(geometry: ConvGeometry, activation: FusedActivation = .none) {
    self.geometry = geometry
    self.activation = activation
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    guard inputs.count == 2 || inputs.count == 3 else {
      throw TensorError(op: "conv2d", operands: inputs, "expects input, filter and optional bias")
    }
    let dtype = try expectSameFloatType(inputs)
    let (x, f) = (inputs[0].shape, inputs[1].shape)
    guard x.rank == 4, f.rank == 4 else {
      throw TensorError(op: "conv2d", operands: inputs, "expects NHWC input and HWIO filter (rank 4)")
    }
    if let problem = geometry.problem { throw TensorError(op: "conv2d", operands: inputs, problem) }
    guard f[0] >= 1, f[1] >= 1 else {
      throw TensorError(op: "conv2d", operands: inputs, "the filter's \(f[0])x\(f[1]) kernel is empty")
    }
    guard x[3] == f[2] else {
      throw TensorError(op: "conv2d", operands: inputs, "input has \(x[3]) channels, the filter expects \(f[2])")
    }
    if inputs.count == 3, inputs[2].shape != [f[3]] {
      throw TensorError(op: "conv2d", operands: inputs, "bias must have shape [\(f[3])]")
    }
    guard let (oh, ow) = geometry.outputSize(input: (x[1], x[2]), kernel: (f[0], f[1])) else {
      throw TensorError(op: "conv2d", operands: inputs, "the \(f[0])x\(f[1]) kernel does not fit the padded input")
    }
    return TensorType([x[0], oh, ow, f[3]], dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    let (x, filter) = (inputs[0], inputs[1])
    let (inputSize, kernelSize) = ((x.shape[1], x.shape[2]), (filter.shape[0], filter.shape[1]))
    // The fused activation's backward pass feeds all three cotangents: run once, if any is needed.
    guard needed.contains(true) else { return needed.map { _ in nil } }
    let g = activation == .relu ? try reluBackward(cotangent, output) : cotangent
    // A network's first conv reads the image: its input cotangent, a full-size backward-data
    // convolution, is the one most often not needed.
    let dx: Tensor? = try needed[0] ? conv2dBackwardData(g, filter, inputSize: inputSize, geometry: geometry) : nil
    let dw: Tensor? = try needed[1] ? conv2dBackwardFilter(x, g, kernelSize: kernelSize, geometry: geometry) : nil
    if inputs.count == 3 { return [dx, dw, try needed[2] ? sum(g, axes: [0, 1, 2]) : nil] }
    return [dx, dw]
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let (xs, fs) = (inputs[0].shape, inputs[1].shape)
    let (x, f) = (inputs[0].doubles, inputs[1].doubles)
    let bias = inputs.count == 3 ? inputs[2].doubles : nil
    let (n, h, w, c) = (xs[0], xs[1], xs[2], xs[3])
    let (kh, kw, o) = (fs[0], fs[1], fs[3])
    let (oh, ow) = (output.shape[1], output.shape[2])
    let (sh, sw) = geometry.strides
    let (pt, pl) = (geometry.padding.top, geometry.padding.left)
    var out = [Double](repeating: 0, count: output.shape.count)
    var acc = [Double](repeating: 0, count: o)
    for b in 0..<n {
      for i in 0..<oh {
        for j in 0..<ow {
          for k in 0..<o { acc[k] = bias?[k] ?? 0 }
          for u in 0..<kh {
            let ih = i * sh + u - pt
            guard ih >= 0, ih < h else { continue }  // zero padding
            for v in 0..<kw {
              let iw = j * sw + v - pl
              guard iw >= 0, iw < w else { continue }
              let xBase = ((b * h + ih) * w + iw) * c
              let fBase = (u * kw + v) * c * o
              for ci in 0..<c {
                let xv = x[xBase + ci]
                for k in 0..<o { acc[k] += xv * f[fBase + ci * o + k] }
              }
            }
          }
          let outBase = ((b * oh + i) * ow + j) * o
          for k in 0..<o { out[outBase + k] = activation == .relu ? max(acc[k], 0) : acc[k] }
        }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - Conv2DBackwardData

/// Convolution backward-data (and transposed convolution): inputs dy [N,OH,OW,O], filter
/// [KH,KW,C,O]; output [N,inputH,inputW,C].
public struct Conv2DBackwardData: Primitive {
  public let geometry: ConvGeometry
  public let inputH, inputW: Int
  public static let kinds: [OpKind] = [.conv2dBackwardData]
  public var description: String { "conv2dBackwardData(\(geometry), input \(inputH)x\(inputW))" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 2)
    let dtype = try expectSameFloatType(inputs)
    let (dy, f) = (inputs[0].shape, inputs[1].shape)
    guard dy.rank == 4, f.rank == 4 else {
      throw TensorError(op: kind.rawValue, operands: inputs, "expects NHWC gradient and HWIO filter (rank 4)")
    }
    if let problem = geometry.problem { throw TensorError(op: kind.rawValue, operands: inputs, problem) }
    guard inputH >= 1, inputW >= 1 else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the input size \(inputH)x\(inputW) is empty")
    }
    guard dy[3] == f[3] else {
      throw TensorError(op: kind.rawValue, operands: inputs, "gradient has \(dy[3]) channels, the filter has \(f[3]) outputs")
    }
    guard let (oh, ow) = geometry.outputSize(input: (inputH, inputW), kernel: (f[0], f[1])), oh == dy[1], ow == dy[2] else {
      throw TensorError(op: kind.rawValue, operands: inputs, "a \(inputH)x\(inputW) input with \(geometry) does not give a \(dy[1])x\(dy[2]) output")
    }
    return TensorType([dy[0], inputH, inputW, f[2]], dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    let (dy, filter) = (inputs[0], inputs[1])
    let kernelSize = (filter.shape[0], filter.shape[1])
    let ddy: Tensor? = try needed[0] ? Tensor.apply(Conv2D(geometry: geometry), [g, filter]) : nil
    let dw: Tensor? = try needed[1] ? conv2dBackwardFilter(g, dy, kernelSize: kernelSize, geometry: geometry) : nil
    return [ddy, dw]
  }

  /// Gathers, for each input pixel, every (output pixel, tap) of the forward conv that read it:
  /// dx[b,ih,iw,c] = sum of dy[b,i,j,k] * f[u,v,c,k] over ih = i*sh+u-top, iw = j*sw+v-left.
  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let (ds, fs) = (inputs[0].shape, inputs[1].shape)
    let (dy, f) = (inputs[0].doubles, inputs[1].doubles)
    let (n, oh, ow, o) = (ds[0], ds[1], ds[2], ds[3])
    let (kh, kw, c) = (fs[0], fs[1], fs[2])
    let (h, w) = (inputH, inputW)
    let (sh, sw) = geometry.strides
    let (pt, pl) = (geometry.padding.top, geometry.padding.left)
    var out = [Double](repeating: 0, count: output.shape.count)
    var acc = [Double](repeating: 0, count: c)
    for b in 0..<n {
      for ih in 0..<h {
        for iw in 0..<w {
          for ci in 0..<c { acc[ci] = 0 }
          for u in 0..<kh {
            // Output row i read this pixel through tap u iff i*sh = ih + top - u.
            let ti = ih + pt - u
            guard ti >= 0, ti % sh == 0, ti / sh < oh else { continue }
            let i = ti / sh
            for v in 0..<kw {
              let tj = iw + pl - v
              guard tj >= 0, tj % sw == 0, tj / sw < ow else { continue }
              let j = tj / sw
              let dBase = ((b * oh + i) * ow + j) * o
              let fBase = (u * kw + v) * c * o
              for ci in 0..<c {
                var s = 0.0
                for k in 0..<o { s += dy[dBase + k] * f[fBase + ci * o + k] }
                acc[ci] += s
              }
            }
          }
          let outBase = ((b * h + ih) * w + iw) * c
          for ci in 0..<c { out[outBase + ci] = acc[ci] }
        }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}

// MARK: - Conv2DBackwardFilter

/// Convolution backward-filter: inputs x [N,H,W,C], dy [N,OH,OW,O]; output [kernelH,kernelW,C,O].
public struct Conv2DBackwardFilter: Primitive {
  public let geometry: ConvGeometry
  public let kernelH, kernelW: Int
  public static let kinds: [OpKind] = [.conv2dBackwardFilter]
  public var description: String { "conv2dBackwardFilter(\(geometry), kernel \(kernelH)x\(kernelW))" }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 2)
    let dtype = try expectSameFloatType(inputs)
    let (x, dy) = (inputs[0].shape, inputs[1].shape)
    guard x.rank == 4, dy.rank == 4, x[0] == dy[0] else {
      throw TensorError(op: kind.rawValue, operands: inputs, "expects NHWC input and gradient of one batch size")
    }
    if let problem = geometry.problem { throw TensorError(op: kind.rawValue, operands: inputs, problem) }
    guard kernelH >= 1, kernelW >= 1 else {
      throw TensorError(op: kind.rawValue, operands: inputs, "the kernel size \(kernelH)x\(kernelW) is empty")
    }
    guard let (oh, ow) = geometry.outputSize(input: (x[1], x[2]), kernel: (kernelH, kernelW)), oh == dy[1], ow == dy[2] else {
      throw TensorError(op: kind.rawValue, operands: inputs, "a \(kernelH)x\(kernelW) kernel with \(geometry) does not give a \(dy[1])x\(dy[2]) output")
    }
    return TensorType([kernelH, kernelW, x[3], dy[3]], dtype)
  }

  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    let (x, dy) = (inputs[0], inputs[1])
    let inputSize = (x.shape[1], x.shape[2])
    let dx: Tensor? = try needed[0] ? conv2dBackwardData(dy, g, inputSize: inputSize, geometry: geometry) : nil
    let ddy: Tensor? = try needed[1] ? Tensor.apply(Conv2D(geometry: geometry), [x, g]) : nil
    return [dx, ddy]
  }

  /// dw[u,v,c,k] = sum over b, i, j of x[b, i*sh+u-top, j*sw+v-left, c] * dy[b,i,j,k].
  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    let (xs, ds) = (inputs[0].shape, inputs[1].shape)
    let (x, dy) = (inputs[0].doubles, inputs[1].doubles)
    let (n, h, w, c) = (xs[0], xs[1], xs[2], xs[3])
    let (oh, ow, o) = (ds[1], ds[2], ds[3])
    let (sh, sw) = geometry.strides
    let (pt, pl) = (geometry.padding.top, geometry.padding.left)
    var out = [Double](repeating: 0, count: output.shape.count)
    for u in 0..<kernelH {
      for v in 0..<kernelW {
        let fBase = (u * kernelW + v) * c * o
        for b in 0..<n {
          for i in 0..<oh {
            let ih = i * sh + u - pt
            guard ih >= 0, ih < h else { continue }  // a padding row contributes zero
            for j in 0..<ow {
              let iw = j * sw + v - pl
              guard iw >= 0, iw < w else { continue }
              let xBase = ((b * h + ih) * w + iw) * c
              let dBase = ((b * oh + i) * ow + j) * o
              for ci in 0..<c {
                let xv = x[xBase + ci]
                for k in 0..<o { out[fBase + ci * o + k] += xv * dy[dBase + k] }
              }
            }
          }
        }
      }
    }
    return HostTensor(type: output, doubles: out)
  }
}
