// MARK: - Op kinds

/// Every primitive op of the core: the closed list each backend must cover with kernels.
/// An op's public function, shape rule, gradient rule and reference kernel live in one file
/// under Ops/.
public enum OpKind: String, CaseIterable, Sendable {
  // Convolution family (Ops/Convolution.swift); transposed conv is conv2dBackwardData.
  case conv2d, conv2dBackwardData, conv2dBackwardFilter
  // Pooling (Ops/Pooling.swift).
  case maxPool2d, maxPool2dBackward
  // Activation (Ops/Activation.swift).
  case relu, reluBackward
  // Elementwise with broadcasting (Ops/Binary.swift) and unary (Ops/Unary.swift).
  case add, sub, mul, div
  case neg, exp, log, sqrt, addScalar, mulScalar
  // Reductions and broadcasting (Ops/Reduction.swift).
  case sum, broadcastTo
  // Softmax over the last (channel) axis (Ops/Softmax.swift).
  case softmax, logSoftmax
  // Layout (Ops/Layout.swift and Ops/Padding.swift); the skip connection's crop and concat as one
  // op, and its gradient (Ops/CropConcat.swift).
  case reshape, concat, slice, pad, padBackward, cropConcat, cropConcatBackward
  // Random, type and label ops (Ops/Random.swift, Ops/Cast.swift, Ops/Labels.swift).
  case randomMask, cast, argmax, oneHot
  // Fused optimizer updates (Ops/Optimizer.swift, Ops/MultiTensorAdam.swift).
  case adamUpdate, multiTensorAdam
  // Elementwise ops run as one, made by the compiler (Ops/Fused.swift); an encoder output's
  // gradient from its pool and its skip as one, made by the compiler (Ops/SkipGradient.swift).
  case fusedElementwise, skipGradient
}

// MARK: - Primitive

/// A primitive op with its attributes: its shape rule, its gradient (written with other ops) and
/// its reference kernel (plain Swift, computing in Double).
public protocol Primitive: Sendable, CustomStringConvertible {
  /// The op kinds a value of this type can be: one for most types; a family such as `Binary` names
  /// each of its functions. Backends register kernels per type (`KernelTable`), so these are what
  /// a registration covers.
  static var kinds: [OpKind] { get }
  /// This op's kind, one of `Self.kinds` (messages, profiles, tolerances). Default: the only one.
  var kind: OpKind { get }

  /// Shape and dtype rule: the output type for these input types, or an error naming the op,
  /// the operand types and what is wrong.
  func outputType(_ inputs: [TensorType]) throws -> TensorType
  /// The types of every output, for an op with more than one (a fused update); default
  /// `[outputType(inputs)]`.
  func outputTypes(_ inputs: [TensorType]) throws -> [TensorType]

  /// Vector-Jacobian product: the cotangent of each input given the output's cotangent, built with
  /// other ops; nil where an input has no gradient (integer inputs, masks). `needed` has one flag per
  /// input: where it is false the cotangent is not built (nil), so that no op runs for a gradient
  /// nobody reads (an image's, a label's); where it is true the result is the same whatever the
  /// other flags are.
  func vjp(_ inputs: [Tensor], output: Tensor, cotangent: Tensor, needed: [Bool]) throws -> [Tensor?]

  /// The reference kernel: computes the output from host inputs, accumulating in Double.
  func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor
  /// The reference kernel of every output; default `[reference(inputs, output: outputs[0])]`.
  func referenceOutputs(_ inputs: [HostTensor], outputs: [TensorType]) throws -> [HostTensor]

  /// Whether `vjp` reads the value of input `index` (not just its type): the graph keeps the value
  /// alive for it. Default: true.
  func vjpReads(input index: Int) -> Bool
  /// Whether `vjp` reads the output's value. Default: true.
  var vjpReadsOutput: Bool { get }
}

extension Primitive {
  public var kind: OpKind { Self.kinds[0] }
  public var description: String { kind.rawValue }

  public func outputTypes(_ inputs: [TensorType]) throws -> [TensorType] { [try outputType(inputs)] }

  public func referenceOutputs(_ inputs: [HostTensor], outputs: [TensorType]) throws -> [HostTensor] {
    [try reference(inputs, output: outputs[0])]
  }

  public func vjpReads(input index: Int) -> Bool { true }
  public var vjpReadsOutput: Bool { true }

  /// The shape rule's common first check: exactly `n` operands.
  public func expectOperands(_ inputs: [TensorType], _ n: Int) throws {
    guard inputs.count == n else {
      throw TensorError(op: kind.rawValue, operands: inputs, "expects \(n) operands, got \(inputs.count)")
    }
  }

  /// The shape rule's common dtype check: every operand of a floating type, all the same.
  public func expectSameFloatType(_ inputs: [TensorType]) throws -> DType {
    guard let d = inputs.first?.dtype else { return .f32 }
    guard d.isFloatingPoint, inputs.allSatisfy({ $0.dtype == d }) else {
      throw TensorError(
        op: kind.rawValue, operands: inputs,
        "operands must share one floating-point dtype; use cast(_:to:)")
    }
    return d
  }
}

// MARK: - Every primitive

/// Every primitive type of the core, which together have every `OpKind` exactly once.
public enum Primitives {
  public static let all: [any Primitive.Type] = [
    Conv2D.self, Conv2DBackwardData.self, Conv2DBackwardFilter.self, MaxPool2D.self, MaxPool2DBackward.self,
    ReLU.self, ReLUBackward.self, Binary.self, Unary.self, Sum.self, BroadcastTo.self, Softmax.self,
    Reshape.self, Concat.self, Slice.self, Pad.self, PadBackward.self, CropConcat.self, CropConcatBackward.self,
    RandomMask.self, Cast.self,
    ArgMax.self, OneHot.self, AdamUpdate.self, MultiTensorAdam.self, FusedElementwise.self,
    SkipGradient.self,
  ]

  /// The primitive type whose ops have `kind`.
  public static func type(of kind: OpKind) -> any Primitive.Type {
    guard let t = all.first(where: { $0.kinds.contains(kind) }) else { preconditionFailure("no primitive type has kind \(kind)") }
    return t
  }
}
