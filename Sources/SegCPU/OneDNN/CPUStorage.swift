import CDNNL
import Foundation
import SegCore

// MARK: - oneDNN memory

/// A oneDNN memory object over a host buffer, in one layout. Keeps the buffer alive.
final class DNNLMemory {
  let handle: dnnl_memory_t
  let layout: Layout
  let buffer: HostBuffer

  /// A memory of `layout` over `buffer`, or over a new buffer of the layout's size. New buffers of
  /// padded layouts (channels rounded up to the block) are zeroed: oneDNN reads the padding.
  init(_ layout: Layout, over buffer: HostBuffer? = nil) throws {
    let ctx = try DNNLContext.get()
    let b = buffer ?? HostBuffer(byteCount: layout.byteCount, zeroed: Self.padded(layout))
    precondition(b.byteCount >= layout.byteCount, "DNNLMemory: buffer smaller than its layout")
    var h: dnnl_memory_t?
    try withUnsafePointer(to: layout.md) {
      try check(dnnl_memory_create(&h, $0, ctx.engine, b.pointer), "dnnl_memory_create")
    }
    handle = h!
    self.layout = layout
    self.buffer = b
  }

  /// A memory of `layout` for output `index` of the kernel running now: in its region of the
  /// caller's arena when placed there (`HostBuffer.output`), zeroed when the layout is padded.
  static func output(_ index: Int, _ layout: Layout) throws -> DNNLMemory {
    try DNNLMemory(layout, over: HostBuffer.output(index, byteCount: layout.byteCount, zeroed: padded(layout)))
  }

  /// A memory of `layout` for a copy the kernel running now lets go before it returns: in its
  /// scratch (`HostBuffer.scratch`), zeroed when the layout is padded.
  static func scratch(_ layout: Layout) throws -> DNNLMemory {
    try DNNLMemory(layout, over: HostBuffer.scratch(layout.byteCount, from: KernelScratch.current, zeroed: padded(layout)))
  }

  /// Whether `layout` rounds some dimension up (channels to the block), leaving padding to zero.
  private static func padded(_ layout: Layout) -> Bool {
    dimsArray(layout.md.padded_dims, Int(layout.md.ndims)) != dimsArray(layout.md.dims, Int(layout.md.ndims))
  }

  deinit { dnnl_memory_destroy(handle) }
}

// MARK: - CPU storage

/// One tensor on the CPU backend: a row-major buffer in the tensor's dtype, and/or oneDNN
/// memories in the layouts oneDNN's primitives chose. A chain of oneDNN ops stays in its blocked
/// layouts, and copies in another layout are made only where an op or a download asks for one;
/// values never change once made, so a small tensor keeps its copies, and a large one lets each go
/// after the op that asked (`keepsConversions`).
final class CPUStorage: DeviceStorage {
  let type: TensorType
  /// Row-major elements, when made.
  private var plain: HostBuffer?
  /// oneDNN memories holding the same values, each seen in a role (how the shape maps onto
  /// oneDNN's dims).
  private var views: [(role: TensorRole, memory: DNNLMemory)] = []

  /// The buffer the tensor was made in (a compiled program's plan reserves its size).
  let origin: HostBuffer
  /// The oneDNN layout it was made in, when a kernel made it as a oneDNN memory.
  let madeLayout: Layout?

  /// A number no other storage had, renewed by `valuesRewritten()`: caches of values derived
  /// from this tensor (the Winograd filter transforms) compare it instead of the values.
  private(set) var generation = CPUStorageGeneration.next()

  /// Says that code outside the kernels rewrote the values in place (no kernel does).
  func valuesRewritten() { generation = CPUStorageGeneration.next() }

  /// A tensor whose row-major elements are in `plain`.
  init(plain: HostBuffer, type: TensorType) {
    self.type = type
    self.plain = plain
    origin = plain
    madeLayout = nil
  }

  /// A tensor held by a oneDNN memory in `role`.
  init(_ memory: DNNLMemory, role: TensorRole, type: TensorType) throws {
    self.type = type
    origin = memory.buffer
    madeLayout = memory.layout
    views = [(role, memory)]
    if memory.layout == (try Layout.plain(type.shape, role, type.dtype)) { plain = memory.buffer }
  }

  /// The row-major elements, reordered from a oneDNN layout if need be (kept when
  /// `keepsConversions`; otherwise the caller holds the copy while it reads it).
  func plainBuffer() throws -> HostBuffer {
    try DNNLContext.locked {
      if let plain { return plain }
      let (role, source) = views[0]
      let bytes = type.shape.count * type.dtype.byteSize
      let buffer = keepsConversions ? HostBuffer(byteCount: bytes) : HostBuffer.scratch(bytes, from: KernelScratch.current)
      let dst = try DNNLMemory(Layout.plain(type.shape, role, type.dtype), over: buffer)
      try reorder(source, into: dst)
      if keepsConversions {
        plain = buffer
        views.append((role, dst))
      }
      return buffer
    }
  }

  /// The values as a oneDNN memory (of the tensor's dtype) of `layout` in `role`, reordered if need be (kept when
  /// `keepsConversions`).
  func memory(_ layout: Layout, role: TensorRole) throws -> DNNLMemory {
    try DNNLContext.locked {
      if let v = views.first(where: { $0.role == role && $0.memory.layout == layout }) { return v.memory }
      let plainLayout = try Layout.plain(type.shape, role, type.dtype)
      if layout == plainLayout, let plain {
        let made = try DNNLMemory(layout, over: plain)
        views.append((role, made))
        return made
      }
      // Reorder from a memory of the same role when there is one (same logical dims);
      // otherwise from the row-major elements.
      let source = try views.first(where: { $0.role == role })?.memory
        ?? DNNLMemory(plainLayout, over: plainBuffer())
      let made = try keepsConversions ? DNNLMemory(layout) : DNNLMemory.scratch(layout)
      try reorder(source, into: made)
      if keepsConversions {
        if layout == plainLayout, plain == nil { plain = made.buffer }
        views.append((role, made))
      }
      return made
    }
  }

  /// Whether a copy in another layout is kept for the tensor's lifetime: only for small tensors
  /// (cheap to keep). Large ones are read in another layout by an op or two (a Swift kernel, a
  /// convolution and its backward pass), and keeping those copies alive with the graph cost the
  /// 572x572 training step about 480 MiB of peak memory. Reordering again costs little: measured on
  /// the same step and on inference at batch 1 (weights reordered for every tile), no slower.
  /// A copy not kept is the asking kernel's scratch (`KernelScratch`): a compiled program plans it
  /// in its arena.
  private var keepsConversions: Bool {
    type.shape.count * type.dtype.byteSize < HostMemory.minimumPooledBytes
  }

  /// Whether a row-major copy exists (diagnostics: a chain of oneDNN ops should not need one).
  var hasRowMajorElements: Bool { DNNLContext.locked { plain != nil } }

  /// The oneDNN layout this tensor was made in, when it has no row-major copy (so that an
  /// elementwise op or pooling can run in it without a reorder); nil otherwise.
  func blockedLayout(_ role: TensorRole) -> Layout? {
    guard role == .flat || type.shape.rank == 4 else { return nil }
    return DNNLContext.locked {
      plain == nil ? views.first { $0.role == role }?.memory.layout : nil
    }
  }
}

/// The counter behind `CPUStorage.generation`.
enum CPUStorageGeneration {
  nonisolated(unsafe) private static var last: UInt64 = 0
  private static let lock = NSLock()
  static func next() -> UInt64 { lock.withLock { last += 1; return last } }
}
