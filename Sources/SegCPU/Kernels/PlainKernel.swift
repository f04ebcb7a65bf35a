import SegCore

// MARK: - The contract between the CPU backend and its Swift kernels

/// One input of a Swift kernel: its type and its elements, row-major (NHWC), in its own dtype.
public struct PlainOperand {
  public let type: TensorType
  public let pointer: UnsafeRawPointer
}

/// The output of a Swift kernel: row-major memory of the output type, allocated by the backend
/// (uninitialised: the kernel writes every element).
public struct PlainOutput {
  public let type: TensorType
  public let pointer: UnsafeMutableRawPointer
}

/// A CPU kernel written in Swift over row-major buffers, for ops of type `P` (received typed). The
/// backend hands it row-major views of the inputs (reordering from oneDNN's blocked layouts where
/// needed) and a fresh output.
public typealias PlainKernel<P: Primitive> = (_ op: P, _ inputs: [PlainOperand], _ output: PlainOutput) throws -> Void
