import SegCore

// MARK: - Elementwise ops

extension CUDABackend {
  /// add, sub, mul, div (NumPy broadcasting) and reluBackward (dy, y): `<kind>_<dtype>` over the
  /// merged output space, each input read through its broadcast strides.
  func binary(_ op: any Primitive, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let dtype = try floatType(op, x, out)
    let y = try output(out)
    let shape = out.shape
    let space = try StridedSpace(
      dims: shape.dims,
      strides: [
        Broadcast.strides(of: x[0].type.shape, broadcastTo: shape),
        Broadcast.strides(of: x[1].type.shape, broadcastTo: shape), shape.strides,
      ]
    ).forKernel(op.kind.rawValue, x.map(\.type))
    let n = shape.count
    try device.launch(
      KernelNames.name(op.kind.rawValue, dtype), count: n,
      arguments: [
        .pointer(x[0].pointer), .pointer(x[1].pointer), .pointer(y.pointer), .int64(Int64(n)), .dims(space.dims),
        .vec(space.strides[0]), .vec(space.strides[1]),
      ])
    return y
  }

  /// neg, exp, log, sqrt, relu, addScalar and mulScalar: `<kind>_<dtype>(x, out, n, c)`.
  func unary(_ op: any Primitive, _ x: [DeviceOperand], _ out: TensorType) throws -> CUDAStorage {
    let dtype = try floatType(op, x, out)
    var c = 0.0
    if let u = op as? Unary {
      switch u.function {
      case .addScalar(let v), .mulScalar(let v): c = v
      default: break
      }
    }
    let y = try output(out)
    let n = out.shape.count
    try device.launch(
      KernelNames.name(op.kind.rawValue, dtype), count: n,
      arguments: [.pointer(x[0].pointer), .pointer(y.pointer), .int64(Int64(n)), .double(c)])
    return y
  }
}
