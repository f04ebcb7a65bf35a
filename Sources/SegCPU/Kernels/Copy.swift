import Foundation
import SegCore

// MARK: - Copies of any dtype

/// reshape: the same row-major bytes under another shape, copied (any dtype).
func reshapeKernel(_ op: Reshape, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  guard inputs[0].type.dtype == output.type.dtype, inputs[0].type.shape.count == output.type.shape.count else {
    throw TensorError(op: "reshape", operands: [inputs[0].type, output.type], "the CPU kernel needs equal counts and dtypes")
  }
  copyBytes(from: inputs[0].pointer, to: output.pointer, count: output.type.shape.count * output.type.dtype.byteSize)
}

/// broadcastTo: repeats the input along broadcast axes (any dtype; elements are moved as bits).
func broadcastToKernel(_ op: BroadcastTo, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  guard inputs[0].type.dtype == output.type.dtype else {
    throw TensorError(op: "broadcastTo", operands: [inputs[0].type, output.type], "the CPU kernel needs one dtype")
  }
  let plan = StridedPlan(broadcasting: [inputs[0].type.shape], to: output.type.shape)
  switch output.type.dtype.byteSize {
  case 1: broadcast(plan, inputs[0].elements(UInt8.self), output.elements(UInt8.self))
  case 2: broadcast(plan, inputs[0].elements(UInt16.self), output.elements(UInt16.self))
  case 4: broadcast(plan, inputs[0].elements(UInt32.self), output.elements(UInt32.self))
  default: broadcast(plan, inputs[0].elements(UInt64.self), output.elements(UInt64.self))
  }
}

/// Runs a broadcast plan for one input of element type E: each run is a copy or a fill.
func broadcast<E>(_ plan: StridedPlan, _ x: UnsafePointer<E>, _ out: UnsafeMutablePointer<E>) {
  let contiguous = plan.innerStride(0) == 1
  plan.forEachRun { o, i, _, n in
    if contiguous {
      (out + o).update(from: x + i, count: n)
    } else {
      (out + o).update(repeating: x[i], count: n)
    }
  }
}

/// memcpy split across threads for large buffers (a single thread does not saturate memory).
func copyBytes(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count: Int) {
  Parallel.forEach(count, grain: Parallel.defaultGrain * 8, align: 64) { r in
    (dst + r.lowerBound).copyMemory(from: src + r.lowerBound, byteCount: r.count)
  }
}
