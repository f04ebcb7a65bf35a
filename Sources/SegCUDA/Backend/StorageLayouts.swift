import Foundation
import SegCore

// MARK: - How a buffer's bytes are laid out

/// The order of a CUDA buffer's bytes. Every tensor is row-major to the ops (a filter is HWIO
/// [KH,KW,C,O]); the backend may keep a filter's bytes in the convolution library's OHWI
/// [O,KH,KW,C] instead, so that no convolution reorders its filter and no filter gradient is
/// reordered back. The layout is the buffer's, set by the kernel that writes it; every kernel that
/// does not read OHWI gets its operands row-major (`CUDABackend.inLayouts`), a download is
/// row-major, and a checkpoint (written from downloads) keeps HWIO on disk.
enum StorageLayout: Sendable {
  /// Row-major in the tensor's own shape.
  case rowMajor
  /// A rank-4 [KH,KW,C,O] tensor whose bytes are [O,KH,KW,C].
  case filterOHWI
  /// Row-major, and every element the same (an upload of one repeated value, as fresh Adam
  /// moments are), so the bytes are also those of any other layout: the fused Adam update may
  /// adopt it as OHWI without moving a byte. Read as row-major by everything else.
  case uniform

  /// Whether buffers of `self` and `other` hold the same bytes for the same value.
  func sameBytes(as other: StorageLayout) -> Bool {
    self == other || self == .uniform && other == .rowMajor || self == .rowMajor && other == .uniform
  }
}

// MARK: - On the host

extension CUDABackend {
  /// The row-major (HWIO) elements of a filter of `shape` [KH,KW,C,O] from its OHWI elements.
  static func hwio<T>(fromOHWI a: [T], _ shape: Shape) -> [T] {
    let (kh, kw, c, o) = (shape[0], shape[1], shape[2], shape[3])
    var out = a
    for oi in 0..<o {
      for h in 0..<kh {
        for w in 0..<kw {
          for ci in 0..<c { out[((h * kw + w) * c + ci) * o + oi] = a[((oi * kh + h) * kw + w) * c + ci] }
        }
      }
    }
    return out
  }

  /// Whether `bytes`, elements of `size` bytes, are one element's bytes repeated: each byte is
  /// the one `size` before it (one comparison of the buffer with itself shifted).
  static func repeatsOneElement(_ bytes: UnsafeRawBufferPointer, _ size: Int) -> Bool {
    guard let base = bytes.baseAddress, size > 0, bytes.count >= size else { return false }
    return memcmp(base + size, base, bytes.count - size) == 0
  }
}

// MARK: - Reorders

extension CUDABackend {
  /// A new buffer of `f`'s value ([KH,KW,C,O] HWIO row-major) with OHWI bytes.
  func reorderedToOHWI(_ f: DeviceOperand) throws -> CUDAStorage {
    let y = try CUDAStorage(device: device, type: f.type)
    try reorderToOHWI(f.pointer, type: f.type, into: y)
    return y
  }

  /// The OHWI bytes of the row-major filter of `type` at `pointer`, into `destination`.
  func reorderToOHWI(_ pointer: UInt64, type: TensorType, into destination: CUDAStorage) throws {
    let s = type.shape
    let (kh, kw, c, o) = (s[0], s[1], s[2], s[3])
    let space = StridedSpace(dims: [o, kh, kw, c], strides: [[1, kw * c * o, c * o, o], [kh * kw * c, kw * c, c, 1]]).merged()
    try copy(from: pointer, to: destination.pointer, space: space, dtype: type.dtype)
    destination.layout = .filterOHWI
  }

  /// The row-major (HWIO) bytes of a filter whose buffer at `pointer` is OHWI, into `destination`.
  func reorderFromOHWI(_ pointer: UInt64, type: TensorType, into destination: CUDAStorage) throws {
    let s = type.shape
    let (kh, kw, c, o) = (s[0], s[1], s[2], s[3])
    let space = StridedSpace(dims: [kh, kw, c, o], strides: [[kw * c, c, 1, kh * kw * c], s.strides]).merged()
    try copy(from: pointer, to: destination.pointer, space: space, dtype: type.dtype)
    destination.layout = .rowMajor
  }

  /// `x` with row-major bytes: itself, or its OHWI bytes reordered into a new buffer.
  func rowMajor(_ x: DeviceOperand) throws -> DeviceOperand {
    guard x.storage.layout == .filterOHWI else { return x }
    let y = try CUDAStorage(device: device, type: x.type)
    try reorderFromOHWI(x.pointer, type: x.type, into: y)
    return DeviceOperand(pointer: y.pointer, type: x.type, storage: y)
  }

  /// `x` with bytes in `layout` (a uniform buffer is in every layout already).
  func laidOut(_ x: DeviceOperand, _ layout: StorageLayout) throws -> DeviceOperand {
    if x.storage.layout.sameBytes(as: layout) || x.storage.layout == .uniform { return x }
    if layout == .filterOHWI {
      let y = try reorderedToOHWI(x)
      return DeviceOperand(pointer: y.pointer, type: x.type, storage: y)
    }
    return try rowMajor(x)
  }
}

// MARK: - Operands in the layouts a kernel reads

extension CUDABackend {
  /// Runs `kernel` (the table's kernel for `op`) on operands it can read: an elementwise op whose
  /// every operand is the output's shape in one layout, or a single element, reads OHWI buffers
  /// as they are and its output is OHWI too (the same element in the same place); a convolution
  /// reads its filter (operand 1) in either layout; a sum to one element reads any layout; every
  /// other operand is made row-major first. A conv's filter gradient sets its own layout.
  func inLayouts(
    _ kind: OpKind, _ x: [DeviceOperand], _ out: TensorType, _ kernel: ([DeviceOperand]) throws -> CUDAStorage?
  ) throws -> CUDAStorage? {
    guard x.contains(where: { $0.storage.layout == .filterOHWI }) else { return try kernel(x) }
    switch kind {
    case .add, .sub, .mul, .div, .neg, .exp, .log, .sqrt, .addScalar, .mulScalar, .relu, .reluBackward, .cast:
      if Self.elementwiseKeepsLayout(x.map(\.type), x.map(\.storage.layout), out) {
        let y = try kernel(x)
        y?.layout = .filterOHWI
        return y
      }
    case .conv2d, .conv2dBackwardData:
      return try kernel(try x.enumerated().map { i, o in i == 1 ? o : try rowMajor(o) })
    case .sum where out.shape.count == 1:
      return try kernel(x)
    default: break
    }
    return try kernel(try x.map(rowMajor))
  }

  /// A fused elementwise op on operands it can read (as `inLayouts` for one elementwise op).
  func fusedInLayouts(_ op: FusedElementwise, _ inputs: [Operand], _ out: TensorType) throws -> any DeviceStorage {
    let x = try inputs.map { i -> DeviceOperand in
      let s = try cudaStorage(i.storage, op: "fusedElementwise")
      return DeviceOperand(pointer: s.pointer, type: i.type, storage: s)
    }
    guard x.contains(where: { $0.storage.layout == .filterOHWI }) else { return try fused(op, inputs, out) }
    if Self.elementwiseKeepsLayout(x.map(\.type), x.map(\.storage.layout), out) {
      let y = try cudaStorage(try fused(op, inputs, out), op: "fusedElementwise")
      y.layout = .filterOHWI
      return y
    }
    let rows = try x.map(rowMajor).map { Operand(storage: $0.storage, type: $0.type) }
    return try fused(op, rows, out)
  }

  /// Whether an elementwise op on operands of `types` in `layouts` may run on OHWI bytes as they
  /// are: every operand of more than one element has the output's shape and OHWI bytes.
  static func elementwiseKeepsLayout(_ types: [TensorType], _ layouts: [StorageLayout], _ out: TensorType) -> Bool {
    zip(types, layouts).allSatisfy { t, l in t.shape.count == 1 || (t.shape == out.shape && l != .rowMajor) }
  }
}

// MARK: - The fused Adam update, one layout per parameter

extension CUDABackend {
  /// `multiTensorAdam` with each parameter's weight, moments, gradient and outputs in one layout.
  /// A filter whose weight or gradient is OHWI is updated OHWI outside a capture, where a weight
  /// or moment in another layout is reordered in its own buffer once (so the trainer's tensors,
  /// kept or not, are OHWI from the first step on). Inside a capture it is the carried weight's
  /// layout, since a graph's buffers must hold the same layout at every launch: a gradient in
  /// another layout is reordered in the graph, and a carried moment or half copy in another one
  /// fails the capture (the step then runs uncaptured, and says why).
  func multiTensorAdamInLayouts(_ op: MultiTensorAdam, _ operands: [DeviceOperand]) throws -> [CUDAStorage]? {
    let n = op.tensors
    let first = 3  // the loss terms and the step state come before the parameters
    guard n > 0, operands.count == first + 4 * n else { return try multiTensorAdam(op, operands) }
    var x = operands
    let inPlace = capturing ? InPlaceOutputs.current?.buffers ?? [:] : nil
    var layouts: [StorageLayout] = []
    for i in 0..<n {
      let (p, g) = (x[first + i], x[first + 3 * n + i])
      guard p.type.shape.rank == 4, p.storage.layout == .filterOHWI || g.storage.layout == .filterOHWI else {
        for k in [first + i, first + n + i, first + 2 * n + i, first + 3 * n + i] { x[k] = try rowMajor(x[k]) }
        layouts.append(.rowMajor)
        continue
      }
      let layout: StorageLayout
      if let inPlace {
        layout = p.storage.layout == .uniform ? g.storage.layout : p.storage.layout
        let carried = [first + n + i, first + 2 * n + i].map { x[$0].storage } + [inPlace[3 * n + 1 + i] as? CUDAStorage].compactMap { $0 }
        if let other = carried.first(where: { !$0.layout.sameBytes(as: layout) && $0.layout != .uniform }) {
          throw CUDAError(.unsupported, "a carried buffer of \(other.type) is \(other.layout), its weight \(layout): not captured")
        }
        x[first + 3 * n + i] = try laidOut(g, layout)
      } else {
        layout = .filterOHWI
        for k in [first + i, first + n + i, first + 2 * n + i] where !x[k].storage.layout.sameBytes(as: layout) && x[k].storage.layout != .uniform {
          x[k] = try reorderedInPlace(x[k], layout)
        }
        x[first + 3 * n + i] = try laidOut(g, layout)
      }
      layouts.append(layout)
    }
    guard let outputs = try multiTensorAdam(op, x) else { return nil }
    for i in 0..<n {
      for k in [i, n + i, 2 * n + i] { outputs[k].layout = layouts[i] }
      if op.halfCopy != nil { outputs[3 * n + 1 + i].layout = layouts[i] }
    }
    return outputs
  }

  /// `x`'s buffer rewritten with its value's bytes in `layout` (through a reordered copy), so that
  /// every tensor holding the buffer reads it in that layout from now on.
  private func reorderedInPlace(_ x: DeviceOperand, _ layout: StorageLayout) throws -> DeviceOperand {
    let moved = try laidOut(x, layout)
    try device.copy(from: moved.pointer, to: x.pointer, bytes: x.storage.bytes)
    x.storage.layout = layout
    return x
  }
}
