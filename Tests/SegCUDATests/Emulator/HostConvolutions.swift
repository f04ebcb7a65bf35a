import Foundation

@testable import SegCUDA
@testable import SegCore

// MARK: - cuDNN's calls on the host

/// A stand-in for cuDNN at the backend's convolution seam (`ConvolutionLibrary`): everything
/// around each call (filter reorders, asymmetric padding, bias and ReLU, crops) is the backend's
/// own code, run on the kernel emulator, and only the library call itself is computed here, by
/// SegCore's reference convolutions on the emulator's memory (which is host memory). On a null
/// `RecordingDevice` (nothing runs) it computes nothing, as the device's kernels do not run either.
final class HostConvolutions: ConvolutionLibrary, @unchecked Sendable {
  /// Whether the device's memory is host memory to compute on (false for the null device).
  let computes: Bool
  /// Each shape's geometry, made once as cuDNN's descriptors are (the legacy path's cache), so
  /// that a test counts the setups a step builds.
  let setups = ConvolutionSetups<ConvGeometry>()

  init(computes: Bool) { self.computes = computes }

  func forward(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    let g = setups.setup(ConvolutionKey(.forward, c)) { geometry(c) }
    guard computes else { return }
    try onHost(b) { try self.forwardNow(c, g) }
  }

  func backwardData(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    let g = setups.setup(ConvolutionKey(.backwardData, c)) { geometry(c) }
    guard computes else { return }
    try onHost(b) { try self.backwardDataNow(c, g) }
  }

  func backwardFilter(_ b: CUDABackend, _ c: ConvolutionCall) throws {
    let g = setups.setup(ConvolutionKey(.backwardFilter, c)) { geometry(c) }
    guard computes else { return }
    try onHost(b) { try self.backwardFilterNow(c, g) }
  }

  /// Runs `work` now, or, inside a capture on a recording device, at each launch of the graph.
  private func onHost(_ b: CUDABackend, _ work: @escaping () throws -> Void) throws {
    if let recorder = b.device as? RecordingDevice { try recorder.hostWork(work) } else { try work() }
  }

  private func forwardNow(_ c: ConvolutionCall, _ g: ConvGeometry) throws {
    let x = read(c.data, c.dataShape, c.dtype), f = hwio(c)
    let op = Conv2D(geometry: g)
    let y = try op.reference([x, f], output: TensorType(c.outputShape, c.dtype))
    write(y, to: c.output)
  }

  private func backwardDataNow(_ c: ConvolutionCall, _ g: ConvGeometry) throws {
    let dy = read(c.output, c.outputShape, c.dtype), f = hwio(c)
    let op = Conv2DBackwardData(geometry: g, inputH: c.dataShape[1], inputW: c.dataShape[2])
    write(try op.reference([dy, f], output: TensorType(c.dataShape, c.dtype)), to: c.data)
  }

  private func backwardFilterNow(_ c: ConvolutionCall, _ g: ConvGeometry) throws {
    let x = read(c.data, c.dataShape, c.dtype), dy = read(c.output, c.outputShape, c.dtype)
    let (o, kh, kw, ci) = (c.filterShape[0], c.filterShape[1], c.filterShape[2], c.filterShape[3])
    let op = Conv2DBackwardFilter(geometry: g, kernelH: kh, kernelW: kw)
    let dw = try op.reference([x, dy], output: TensorType([kh, kw, ci, o], c.dtype)).doubles
    // HWIO -> OHWI, the library's layout.
    var ohwi = [Double](repeating: 0, count: dw.count)
    for u in 0..<kh { for v in 0..<kw { for i in 0..<ci { for j in 0..<o {
      let to: Int = ((j * kh + u) * kw + v) * ci + i
      let from: Int = ((u * kw + v) * ci + i) * o + j
      ohwi[to] = dw[from]
    } } } }
    write(HostTensor(type: TensorType(c.filterShape, c.dtype), doubles: ohwi), to: c.filter)
  }

  // MARK: Host memory

  private func geometry(_ c: ConvolutionCall) -> ConvGeometry {
    ConvGeometry(strides: c.geometry.strides, padding: Padding2D(top: c.pad.0, bottom: c.pad.0, left: c.pad.1, right: c.pad.1))
  }

  /// The OHWI filter of `c` as an HWIO host tensor.
  private func hwio(_ c: ConvolutionCall) -> HostTensor {
    let (o, kh, kw, ci) = (c.filterShape[0], c.filterShape[1], c.filterShape[2], c.filterShape[3])
    let f = read(c.filter, c.filterShape, c.dtype).doubles
    var out = [Double](repeating: 0, count: f.count)
    for u in 0..<kh { for v in 0..<kw { for i in 0..<ci { for j in 0..<o {
      let to: Int = ((u * kw + v) * ci + i) * o + j
      let from: Int = ((j * kh + u) * kw + v) * ci + i
      out[to] = f[from]
    } } } }
    return HostTensor(type: TensorType([kh, kw, ci, o], c.dtype), doubles: out)
  }

  private func read(_ pointer: UInt64, _ shape: Shape, _ dtype: DType) -> HostTensor {
    let raw = UnsafeRawPointer(bitPattern: UInt(pointer))!
    func values<T>(_: T.Type) -> [T] { Array(UnsafeBufferPointer(start: raw.assumingMemoryBound(to: T.self), count: shape.count)) }
    let data: HostData
    switch dtype {
    case .f16: data = .f16(values(Float16.self))
    case .bf16: data = .bf16(values(UInt16.self))
    default: data = .f32(values(Float.self))
    }
    return try! HostTensor(shape: shape, data: data)
  }

  private func write(_ t: HostTensor, to pointer: UInt64) {
    let raw = UnsafeMutableRawPointer(bitPattern: UInt(pointer))!
    func copy<T>(_ a: [T]) { a.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    switch t.data {
    case .f16(let a): copy(a)
    case .bf16(let a): copy(a)
    case .f32(let a): copy(a)
    default: preconditionFailure("the stand-in convolves f32, f16 and bf16")
    }
  }
}
