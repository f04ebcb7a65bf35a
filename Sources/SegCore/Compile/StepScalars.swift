// MARK: - Step scalars

/// A number that changes from step to step and enters ops as an attribute, not a tensor: a dropout
/// seed, Adam's bias-corrected step size or learning rate, a loss scale's inverse. A compiled function receives them
/// by name at each call. The code that makes such an op marks it where it makes it
/// (`markingStepScalar`), the trace records the mark as a `ScalarBinding`, and the replay writes the
/// call's value there, so the value is never baked in as a constant, and two attributes that happen
/// to hold the same number are never confused.
public enum StepScalar: Hashable, Sendable, CustomStringConvertible {
  /// 64 bits taken as they are (a seed).
  case bits(UInt64)
  /// A real number.
  case real(Double)

  public var description: String {
    switch self {
    case .bits(let b): return "bits(\(b))"
    case .real(let r): return "real(\(r))"
    }
  }
}

/// The step scalars of one call, by name.
public typealias StepScalars = [String: StepScalar]

/// Which attribute of an op takes which step scalar.
public struct ScalarBinding: Sendable, CustomStringConvertible {
  /// The attributes that can be bound.
  public enum Attribute: String, Sendable {
    /// `RandomMask.seed`.
    case randomMaskSeed
    /// `AdamUpdate.constants.stepSize`.
    case adamStepSize
    /// The constant of `Unary.mulScalar`.
    case mulScalar
    /// The constant of `Unary.addScalar`.
    case addScalar
    /// `MultiTensorAdam.hyper.learningRate`.
    case multiAdamLearningRate
  }
  public let attribute: Attribute
  /// The step scalar's name.
  public let scalar: String
  public var description: String { "\(attribute.rawValue)=$\(scalar)" }
}

// MARK: - Marking where a step scalar is made

/// The marks in force while an op is made: which attribute kind takes which step scalar.
enum StepScalarMarks {
  @TaskLocal static var active: [(name: String, attribute: ScalarBinding.Attribute)] = []

  /// The bindings of `op` under the marks in force: each marked attribute kind that `op` has, the
  /// innermost mark winning.
  static func bindings(of op: any Primitive) -> [ScalarBinding] {
    let marks = active
    guard !marks.isEmpty else { return [] }
    var result: [ScalarBinding] = []
    for (attribute, _) in bindableAttributes(of: op) {
      if let mark = marks.last(where: { $0.attribute == attribute }) {
        result.append(ScalarBinding(attribute: attribute, scalar: mark.name))
      }
    }
    return result
  }
}

/// Runs `body`, marking the `attribute` of every op it makes as the step scalar `name`: while a
/// compiled function traces, those ops are bound to the scalar and take its value at each replay;
/// otherwise this is just `body()`. Mark the narrowest code that makes the op (the one product by
/// a learning rate, not the whole optimizer), so that no other op of the same kind is bound.
public func markingStepScalar<T>(
  _ name: String, _ attribute: ScalarBinding.Attribute, _ body: () throws -> T
) rethrows -> T {
  try StepScalarMarks.$active.withValue(StepScalarMarks.active + [(name, attribute)]) { try body() }
}

// MARK: - Reading and applying bindings

/// The attributes of `op` that a step scalar can be bound to, with their values.
func bindableAttributes(of op: any Primitive) -> [(ScalarBinding.Attribute, StepScalar)] {
  switch op {
  case let m as RandomMask: return [(.randomMaskSeed, .bits(m.seed))]
  case let a as AdamUpdate: return [(.adamStepSize, .real(a.constants.stepSize))]
  case let a as MultiTensorAdam: return [(.multiAdamLearningRate, .real(a.hyper.learningRate))]
  case let u as Unary:
    switch u.function {
    case .mulScalar(let c): return [(.mulScalar, .real(c))]
    case .addScalar(let c): return [(.addScalar, .real(c))]
    default: return []
    }
  default: return []
  }
}

/// `op` with its bound attributes set from `scalars`; errors name a missing or mistyped scalar.
func rebind(_ op: any Primitive, _ bindings: [ScalarBinding], _ scalars: StepScalars) throws -> any Primitive {
  var op = op
  for b in bindings {
    guard let value = scalars[b.scalar] else {
      throw TensorError(op: "compile", "the program needs the step scalar \"\(b.scalar)\" (traced into \(op)); pass it at every call")
    }
    switch (b.attribute, value, op) {
    case (.randomMaskSeed, .bits(let seed), let m as RandomMask):
      op = RandomMask(shape: m.shape, keepProbability: m.keepProbability, seed: seed, offset: m.offset, dtype: m.dtype)
    case (.adamStepSize, .real(let size), let a as AdamUpdate):
      let c = a.constants
      op = AdamUpdate(AdamConstants(beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon, stepSize: size))
    case (.multiAdamLearningRate, .real(let rate), let a as MultiTensorAdam):
      let h = a.hyper
      op = MultiTensorAdam(
        AdamHyperparameters(learningRate: rate, beta1: h.beta1, beta2: h.beta2, epsilon: h.epsilon), tensors: a.tensors,
        weightDecay: a.weightDecay, growthInterval: a.growthInterval, halfCopy: a.halfCopy)
    case (.mulScalar, .real(let c), is Unary): op = Unary(.mulScalar(c))
    case (.addScalar, .real(let c), is Unary): op = Unary(.addScalar(c))
    default:
      throw TensorError(op: "compile", "the step scalar \"\(b.scalar)\" is \(value), which \(b.attribute.rawValue) of \(op) cannot take")
    }
  }
  return op
}
