import Foundation
import SegCore

// MARK: - Kernels generated at run time

/// The kernels made while the program runs (a compiled program's fused elementwise ops), each a
/// family of its own: registered once per distinct expression and operand types, given a
/// `KernelHandle` past `KernelLibrary.allKernels`, so that devices launch, compile (NVRTC, at the
/// kernel's first launch, one module per family) and record them as they do the library's.
public final class GeneratedKernels: @unchecked Sendable {
  /// The process's registry (a handle names the same kernel on every device).
  public static let shared = GeneratedKernels()

  private var families: [KernelFamily] = []
  /// The handle of each key seen, nil where the generator does not cover the operands.
  private var byKey: [FusedKernelKey: KernelHandle?] = [:]
  private let lock = NSLock()

  /// How many kernels have been generated.
  public var count: Int { lock.withLock { families.count } }

  /// The handle of the generated kernel of `op` on inputs of `inputs`' types, generating it at the
  /// first call for its key; nil when the generator does not cover how an input is read.
  public func handle(for op: FusedElementwise, inputs: [TensorType]) -> KernelHandle? {
    let key = FusedKernelKey(op, inputs)
    if let known = lock.withLock({ byKey[key] }) { return known }
    let family = FusedKernelSource.family(for: op, inputs: inputs)
    return lock.withLock {
      if let known = byKey[key] { return known }
      guard let family else {
        byKey[key] = .some(nil)
        return nil
      }
      // Two keys can make one source (a step's type that the source does not spell): one family.
      if let i = families.firstIndex(where: { $0.name == family.name }) {
        let h = KernelHandle(index: KernelLibrary.allKernels.count + i)
        byKey[key] = h
        return h
      }
      families.append(family)
      let h = KernelHandle(index: KernelLibrary.allKernels.count + families.count - 1)
      byKey[key] = h
      return h
    }
  }

  /// The family of generated handle `index` (at least `KernelLibrary.allKernels.count`).
  func family(at index: Int) -> KernelFamily {
    lock.withLock { families[index - KernelLibrary.allKernels.count] }
  }
}

// MARK: - The key

/// What makes two fused ops the same kernel: each step's op (with its constant or target dtype),
/// its operands and its type, and the inputs' types (their shapes decide how each is read).
struct FusedKernelKey: Hashable {
  enum OpKey: Hashable {
    case unary(OpKind, constant: UInt64)
    case binary(OpKind)
    case relu
    case reluBackward
    case cast(DType)
  }
  struct StepKey: Hashable {
    let op: OpKey
    let operands: [FusedElementwise.Source]
    let type: TensorType
  }
  let steps: [StepKey]
  let inputs: [TensorType]

  init(_ op: FusedElementwise, _ inputs: [TensorType]) {
    steps = op.steps.map { s in
      let key: OpKey
      switch s.op {
      case .unary(let u):
        switch u.function {
        case .addScalar(let c), .mulScalar(let c): key = .unary(u.kind, constant: c.bitPattern)
        default: key = .unary(u.kind, constant: 0)
        }
      case .binary(let b): key = .binary(b.kind)
      case .relu: key = .relu
      case .reluBackward: key = .reluBackward
      case .cast(let c): key = .cast(c.dtype)
      }
      return StepKey(op: key, operands: s.operands, type: s.type)
    }
    self.inputs = inputs
  }
}
