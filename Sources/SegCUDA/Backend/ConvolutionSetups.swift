import CCUDA
import Foundation
import SegCore

// MARK: - What a convolution's setup depends on

/// The key of one library convolution: what its descriptors and its algorithm depend on (the
/// direction, the NHWC data, OHWI filter and NHWC output shapes, the symmetric padding, the
/// strides and the dtype). Hashed as integers: no string is built per call.
struct ConvolutionKey: Hashable, Sendable {
  /// Which of the library's three calls.
  enum Direction: UInt8, Hashable, Sendable { case forward, backwardData, backwardFilter }

  var direction: Direction
  /// The data [N,H,W,C], the filter [O,KH,KW,C] and the output [N,OH,OW,O].
  var data: Shape, filter: Shape, output: Shape
  var padH: Int, padW: Int, strideH: Int, strideW: Int
  var dtype: DType
}

extension ConvolutionKey {
  /// The key of `c` in `direction`.
  init(_ direction: Direction, _ c: ConvolutionCall) {
    self.init(
      direction: direction, data: c.dataShape, filter: c.filterShape, output: c.outputShape, padH: c.pad.0,
      padW: c.pad.1, strideH: c.geometry.strideH, strideW: c.geometry.strideW, dtype: c.dtype)
  }
}

// MARK: - Setups made once per key

/// A library's per-shape setups (the legacy cuDNN path's descriptors and algorithm, a test
/// library's own), made at a key's first call and kept for the backend's life: a U-Net step has
/// a few dozen shapes and calls them every step. `made` counts the setups built, so that a test
/// sees that steps after the first build none.
final class ConvolutionSetups<Setup>: @unchecked Sendable {
  private var setups: [ConvolutionKey: Setup] = [:]
  private var madeCount = 0
  private var lookupCount = 0
  private let lock = NSLock()

  init() {}

  /// The setup of `key`, made by `make` at the key's first call.
  func setup(_ key: ConvolutionKey, make: () throws -> Setup) rethrows -> Setup {
    try lock.withLock {
      lookupCount += 1
      if let s = setups[key] { return s }
      let s = try make()
      setups[key] = s
      madeCount += 1
      return s
    }
  }

  /// Setups built so far (one per distinct key).
  var made: Int { lock.withLock { madeCount } }
  /// Calls so far, each a lookup.
  var lookups: Int { lock.withLock { lookupCount } }
}

// MARK: - cuDNN's legacy descriptors

/// The descriptors of one legacy cuDNN convolution (NHWC data and output, an OHWI filter, the
/// convolution with its math type) and the algorithm found for them with its workspace; destroyed
/// with the setup.
final class CUDNNConvolutionSetup: @unchecked Sendable {
  let api: CUDNNAPI
  let data: ccuda_cudnnTensorDescriptor
  let output: ccuda_cudnnTensorDescriptor
  let filter: ccuda_cudnnFilterDescriptor
  let convolution: ccuda_cudnnConvolutionDescriptor
  /// The algorithm cuDNN's Find chose (set once, right after the descriptors are made).
  var algorithm: Int32 = -1
  var workspaceBytes = 0

  /// The descriptors of `key` (host objects: no handle and no GPU needed); f32 uses TF32 Tensor
  /// Cores only with `tensorFloat32`, so that fp32 means fp32.
  init(api: CUDNNAPI, key: ConvolutionKey, tensorFloat32: Bool) throws {
    self.api = api
    let dt = try CUDNNConvolutions.cudnnType(key.dtype)
    var made: [() -> Void] = []
    // On an error the descriptors made so far are destroyed (deinit does not run for a failed init).
    var ok = false
    defer { if !ok { made.reversed().forEach { $0() } } }

    var conv: ccuda_cudnnConvolutionDescriptor? = nil
    try api.check(api.cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor")
    made.append { _ = api.cudnnDestroyConvolutionDescriptor(conv) }
    try api.check(
      api.cudnnSetConvolution2dDescriptor(
        conv, Int32(key.padH), Int32(key.padW), Int32(key.strideH), Int32(key.strideW), 1, 1,
        CCUDA_CUDNN_CROSS_CORRELATION, CCUDA_CUDNN_DATA_FLOAT),
      "cudnnSetConvolution2dDescriptor")
    let math = dt == CCUDA_CUDNN_DATA_FLOAT && !tensorFloat32 ? CCUDA_CUDNN_FMA_MATH : CCUDA_CUDNN_TENSOR_OP_MATH
    try api.check(api.cudnnSetConvolutionMathType(conv, math), "cudnnSetConvolutionMathType")

    func tensor(_ s: Shape) throws -> ccuda_cudnnTensorDescriptor {
      var d: ccuda_cudnnTensorDescriptor? = nil
      try api.check(api.cudnnCreateTensorDescriptor(&d), "cudnnCreateTensorDescriptor")
      made.append { _ = api.cudnnDestroyTensorDescriptor(d) }
      try api.check(
        api.cudnnSetTensor4dDescriptor(d, CCUDA_CUDNN_TENSOR_NHWC, dt, Int32(s[0]), Int32(s[3]), Int32(s[1]), Int32(s[2])),
        "cudnnSetTensor4dDescriptor(\(s))")
      return d!
    }
    let x = try tensor(key.data), y = try tensor(key.output)
    var f: ccuda_cudnnFilterDescriptor? = nil
    try api.check(api.cudnnCreateFilterDescriptor(&f), "cudnnCreateFilterDescriptor")
    made.append { _ = api.cudnnDestroyFilterDescriptor(f) }
    let s = key.filter
    try api.check(
      api.cudnnSetFilter4dDescriptor(f, dt, CCUDA_CUDNN_TENSOR_NHWC, Int32(s[0]), Int32(s[3]), Int32(s[1]), Int32(s[2])),
      "cudnnSetFilter4dDescriptor(\(s))")
    (data, output, filter, convolution) = (x, y, f!, conv!)
    ok = true
  }

  deinit {
    _ = api.cudnnDestroyTensorDescriptor(data)
    _ = api.cudnnDestroyTensorDescriptor(output)
    _ = api.cudnnDestroyFilterDescriptor(filter)
    _ = api.cudnnDestroyConvolutionDescriptor(convolution)
  }
}
