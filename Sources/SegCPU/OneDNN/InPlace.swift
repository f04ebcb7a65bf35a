import SegCore

// MARK: - Outputs written over their inputs

extension CPUBackend: InPlaceWriting {
  /// True for an output made in exactly the layout of `input`, with no padding, by a fused
  /// elementwise op, whose kernel (the tiled loop, or the steps' own elementwise kernels when it
  /// declines) reads each tile of a full-size input before writing the output's tile at the same
  /// offsets, or by a ReLU backward over its cotangent (operand 0), which oneDNN's eltwise
  /// backward takes as its own output. A padded layout is excluded because its output buffer is
  /// zeroed before the kernel runs, and a layout change because a reorder would read other
  /// offsets than it writes.
  public func mayOverwrite(_ input: any DeviceStorage, operand: Int, with output: any DeviceStorage, kind: OpKind) -> Bool {
    guard kind == .fusedElementwise || (kind == .reluBackward && operand == 0), let x = input as? CPUStorage, let y = output as? CPUStorage,
      x.type == y.type, x.madeLayout == y.madeLayout, x.origin.byteCount == y.origin.byteCount,
      y.origin.byteCount == y.type.shape.count * y.type.dtype.byteSize
    else { return false }
    return true
  }
}

// MARK: - Outputs kept in the arena

extension CPUBackend: ArenaValueCounting {
  /// The regions of `arena` whose buffers are still held (by a kept output or a view of one).
  public func heldRegions(in arena: any DeviceArena) -> [Range<Int>] { (arena as? CPUArena)?.held.ranges ?? [] }
}
