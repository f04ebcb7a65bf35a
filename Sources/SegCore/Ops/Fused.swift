// MARK: - Public function

/// `ops` run as one fused op on `inputs` (each op reads inputs or earlier ops' results; the last
/// one's result is returned): what the compiler's fusion makes, for checks and tests.
public func fusedElementwise(_ inputs: [Tensor], _ ops: [(FusedElementwise.Elementwise, [FusedElementwise.Source])]) throws -> Tensor {
  try Tensor.apply(FusedElementwise(inputs: inputs.map(\.type), ops), inputs)
}

// MARK: - Fused elementwise

/// Elementwise ops run as one (made by the compiler's `FuseElementwise` pass, never by a model): a
/// small program whose steps are the ops it replaced, each reading the fused op's inputs or earlier
/// steps, every step of the output's shape; the last step is the output. Its meaning is the ops'
/// own: the reference kernel runs each step's reference kernel in turn, its gradient is their
/// gradients chained, and a backend's fast kernel evaluates the same steps per element, so no op's
/// formula is written twice.
public struct FusedElementwise: Primitive {
  /// Where a step reads an operand: an input of the fused op, or the result of an earlier step.
  public enum Source: Sendable, Hashable, CustomStringConvertible {
    case input(Int)
    case step(Int)

    public var description: String {
      switch self {
      case .input(let i): return "in\(i)"
      case .step(let j): return "t\(j)"
      }
    }
  }

  /// The ops a fusion may take, each with its own type (so that a backend's kernel switches over
  /// them instead of casting): one output element from the operands' elements at the same
  /// (broadcast) place.
  public enum Elementwise: Sendable, CustomStringConvertible {
    case unary(Unary)
    case binary(Binary)
    case relu(ReLU)
    case reluBackward(ReLUBackward)
    /// Between floating types only.
    case cast(Cast)

    /// `op` when it is one of these ops, else nil.
    public init?(_ op: any Primitive) {
      switch op {
      case let u as Unary: self = .unary(u)
      case let b as Binary: self = .binary(b)
      case let r as ReLU: self = .relu(r)
      case let r as ReLUBackward: self = .reluBackward(r)
      case let c as Cast where c.dtype.isFloatingPoint: self = .cast(c)
      default: return nil
      }
    }

    /// The op as a primitive.
    public var primitive: any Primitive {
      switch self {
      case .unary(let u): return u
      case .binary(let b): return b
      case .relu(let r): return r
      case .reluBackward(let r): return r
      case .cast(let c): return c
      }
    }

    public var description: String { primitive.description }
  }

  /// One replaced op: the op itself, where it reads each operand and the type it makes.
  public struct Step: Sendable {
    public let op: Elementwise
    public let operands: [Source]
    public let type: TensorType

    /// A step running `op` on `operands`, making `type`.
    public init(op: Elementwise, operands: [Source], type: TensorType) {
      (self.op, self.operands, self.type) = (op, operands, type)
    }
  }

  /// The steps in order; the last one's result is the output.
  public let steps: [Step]

  public static let kinds: [OpKind] = [.fusedElementwise]

  /// The fused op of `ops` on inputs of `inputs`' types, each step's type from its shape rule.
  public init(inputs: [TensorType], _ ops: [(Elementwise, [Source])]) throws {
    var steps: [Step] = []
    for (op, operands) in ops {
      let types = try operands.map { src -> TensorType in
        switch src {
        case .input(let i) where i < inputs.count: return inputs[i]
        case .step(let k) where k < steps.count: return steps[k].type
        default: throw TensorError(op: "fusedElementwise", operands: inputs, "step \(steps.count) (\(op)) reads \(src), which it cannot see")
        }
      }
      steps.append(Step(op: op, operands: operands, type: try op.primitive.outputType(types)))
    }
    guard !steps.isEmpty else { throw TensorError(op: "fusedElementwise", operands: inputs, "needs at least one op") }
    self.init(steps: steps)
  }

  /// A fused op of `steps` (at least one; each reads only inputs and earlier steps).
  public init(steps: [Step]) {
    precondition(!steps.isEmpty, "a fused op needs at least one step")
    self.steps = steps
  }

  /// The steps as one expression per line, e.g. "t1 = add(t0, in2) : [1,4,4,8] f32".
  public var expression: String {
    steps.enumerated().map { j, s in "t\(j) = \(s.op)(\(s.operands.map(\.description).joined(separator: ", "))) : \(s.type)" }
      .joined(separator: "\n")
  }

  public var description: String {
    "fusedElementwise[" + steps.map { "\($0.op)" }.joined(separator: ", ") + "]"
  }

  // MARK: Shape rule

  /// Each step's shape rule on the types it reads must give the type it records.
  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    var types: [TensorType] = []
    for (j, s) in steps.enumerated() {
      let operandTypes = try s.operands.map { src -> TensorType in
        switch src {
        case .input(let i) where i < inputs.count: return inputs[i]
        case .step(let k) where k < j: return types[k]
        default:
          throw TensorError(op: "fusedElementwise", operands: inputs, "step \(j) (\(s.op)) reads \(src), which it cannot see")
        }
      }
      let t = try s.op.primitive.outputType(operandTypes)
      guard t == s.type else {
        throw TensorError(op: "fusedElementwise", operands: inputs, "step \(j) (\(s.op)) makes \(t), recorded as \(s.type)")
      }
      types.append(t)
    }
    return types.last!
  }

  // MARK: Gradient

  /// The steps' gradients chained: the steps are run again as ordinary ops (their values are what
  /// their VJPs read), then each step's VJP from the last to the first, cotangents of an operand
  /// read twice summed.
  public func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?] {
    // A step's cotangent is built only when the step reads a needed input, directly or through
    // earlier steps; nothing needed runs nothing.
    var leadsToNeeded = [Bool](repeating: false, count: steps.count)
    for (j, s) in steps.enumerated() {
      leadsToNeeded[j] = s.operands.contains { src in
        switch src {
        case .input(let i): return needed[i]
        case .step(let k): return leadsToNeeded[k]
        }
      }
    }
    guard leadsToNeeded.last == true else { return inputs.map { _ in nil } }
    var values: [Tensor] = []
    func value(_ s: Source) -> Tensor {
      switch s {
      case .input(let i): return inputs[i]
      case .step(let k): return values[k]
      }
    }
    for s in steps.dropLast() { values.append(try Tensor.apply(s.op.primitive, s.operands.map(value))) }
    values.append(output)
    var stepCotangents = [Tensor?](repeating: nil, count: steps.count)
    stepCotangents[steps.count - 1] = cotangent
    var inputCotangents = [Tensor?](repeating: nil, count: inputs.count)
    func accumulate(_ into: inout Tensor?, _ g: Tensor) throws { into = try into.map { try $0 + g } ?? g }
    for j in steps.indices.reversed() {
      guard let g = stepCotangents[j] else { continue }
      let s = steps[j]
      let wants = s.operands.map { src -> Bool in
        switch src {
        case .input(let i): return needed[i]
        case .step(let k): return leadsToNeeded[k]
        }
      }
      let gs = try s.op.primitive.vjp(s.operands.map(value), output: values[j], cotangent: g, needed: wants)
      for (src, gi) in zip(s.operands, gs) {
        guard let gi else { continue }
        switch src {
        case .input(let i): if needed[i] { try accumulate(&inputCotangents[i], gi) }
        case .step(let k): try accumulate(&stepCotangents[k], gi)
        }
      }
    }
    return inputCotangents
  }

  // MARK: Reference

  /// Each step's own reference kernel, in turn.
  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    var results: [HostTensor] = []
    for s in steps {
      let operands = s.operands.map { src -> HostTensor in
        switch src {
        case .input(let i): return inputs[i]
        case .step(let k): return results[k]
        }
      }
      results.append(try s.op.primitive.reference(operands, output: s.type))
    }
    return results.last!
  }
}

// MARK: - Running the steps with a backend's own kernels

extension FusedElementwise {
  /// The output computed by running each step in turn with `kernels` (a backend's own table), the
  /// output placed where the caller asked (`OutputPlacement.current`) and the steps between in
  /// buffers of their own: what the unfused ops give, for operands a backend's fused kernel does
  /// not take.
  public func runSteps(_ inputs: [Operand], with kernels: KernelTable) throws -> any DeviceStorage {
    let placement = OutputPlacement.current
    var results: [Operand] = []
    for (j, s) in steps.enumerated() {
      let operands = s.operands.map { src -> Operand in
        switch src {
        case .input(let i): return inputs[i]
        case .step(let k): return results[k]
        }
      }
      let made = try OutputPlacement.$current.withValue(j == steps.count - 1 ? placement : nil) {
        try kernels.run(s.op.primitive, operands, outputs: [s.type])
      }
      results.append(Operand(storage: made[0], type: s.type))
    }
    return results.last!.storage
  }
}
