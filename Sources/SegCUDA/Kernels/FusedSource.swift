import Foundation
import SegCore

// MARK: - Fused elementwise kernels, generated

/// CUDA source for one `FusedElementwise`, generated from its steps: one grid-stride loop that
/// loads each input once per element, runs the steps with the unfused kernels' own functors
/// (`AddOp::apply`, `ReluOp::apply`, ... of `ElementwiseKernels.body`), each step's value rounded
/// to its dtype as the unfused kernel would store it, and stores the last. The kernel is
/// `fused_<hash>(in0, ..., out, n, channels)`: n output elements row-major (NHWC); each input is
/// of the output's shape (read at i), per-channel (a [C] row repeated: read at i % channels) or a
/// single value (read at 0).
enum FusedKernelSource {
  /// How a generated kernel reads one input.
  enum Access: String { case full, channel, single }

  /// The family (source and kernel name) for `op` on inputs of `inputs`' types, or nil when an
  /// input is read some other way (a general broadcast: the steps then run one kernel each).
  static func family(for op: FusedElementwise, inputs: [TensorType]) -> KernelFamily? {
    guard let output = op.steps.last?.type, output.shape.count > 0 else { return nil }
    let channels = output.shape.dims.last ?? 1
    var access: [Access] = []
    for t in inputs {
      guard t.dtype.isFloatingPoint else { return nil }
      if t.shape == output.shape { access.append(.full) }
      else if t.shape.count == 1 { access.append(.single) }
      else if t.shape.rank <= output.shape.rank, t.shape.dims.last == channels, t.shape.count == channels { access.append(.channel) }
      else { return nil }
    }
    guard op.steps.allSatisfy({ $0.type.shape == output.shape && $0.type.dtype.isFloatingPoint }) else { return nil }
    let loop = body(op, inputs: inputs, access: access)
    let name = "fused_" + NVRTCCompiler.hash(loop).prefix(16)
    let parameters = inputs.enumerated().map { "const \(KernelNames.cType($1.dtype))* __restrict__ in\($0)" }
      + ["\(KernelNames.cType(output.dtype))* __restrict__ out", "i64 n", "i64 channels"]
    let kernel = "KERNEL \(name)(\(parameters.joined(separator: ", "))) {\n\(loop)}\n"
    return KernelFamily(name: name, body: ElementwiseKernels.body, instances: [(name, kernel)])
  }

  /// The loop: loads, one line per step, the store.
  private static func body(_ op: FusedElementwise, inputs: [TensorType], access: [Access]) -> String {
    var lines = ["  #pragma unroll 1", "  for (i64 i = gridStart(); i < n; i += gridStep()) {"]
    if access.contains(.channel) { lines.append("    const i64 c = i % channels;") }
    for (k, t) in inputs.enumerated() {
      let index = access[k] == .full ? "i" : access[k] == .channel ? "c" : "0"
      lines.append("    const \(compute(t.dtype)) a\(k) = Elem<\(KernelNames.cType(t.dtype))>::load(in\(k)[\(index)]);")
    }
    for (j, step) in op.steps.enumerated() {
      let args = step.operands.map { src -> String in
        switch src {
        case .input(let k): return "a\(k)"
        case .step(let s): return "t\(s)"
        }
      }
      let c = compute(step.type.dtype)
      let value = expression(step.op, args, c)
      lines.append("    // t\(j) = \(step.op)")
      lines.append("    const \(c) t\(j) = \(rounded(value, step.type.dtype));")
    }
    let last = op.steps.count - 1
    lines.append("    out[i] = Elem<\(KernelNames.cType(op.steps[last].type.dtype))>::store(t\(last));")
    lines.append("  }")
    return lines.joined(separator: "\n") + "\n"
  }

  /// The compute type of `dtype` (f32 for the half types).
  private static func compute(_ dtype: DType) -> String { dtype == .f64 ? "double" : "float" }

  /// `value` rounded to `dtype` and back, as the unfused kernel's store then the next one's load.
  private static func rounded(_ value: String, _ dtype: DType) -> String {
    switch dtype {
    case .f16, .bf16:
      let t = KernelNames.cType(dtype)
      return "Elem<\(t)>::load(Elem<\(t)>::store(\(value)))"
    default: return value
    }
  }

  /// The functor call of `op` on `args` in compute type `c`.
  private static func expression(_ op: FusedElementwise.Elementwise, _ args: [String], _ c: String) -> String {
    func call(_ functor: String, _ a: String, _ b: String) -> String { "\(functor)::apply(\(a), \(b))" }
    switch op {
    case .unary(let u):
      let functor = ElementwiseKernels.unary.first { $0.0 == u.kind }!.1
      let constant: Double
      switch u.function {
      case .addScalar(let x), .mulScalar(let x): constant = x
      default: constant = 0
      }
      return call(functor, args[0], "(\(c))\(literal(constant))")
    case .binary(let b):
      return call(ElementwiseKernels.binary.first { $0.0 == b.kind }!.1, args[0], args[1])
    case .relu: return call("ReluOp", args[0], "(\(c))0")
    case .reluBackward: return call("ReluBackwardOp", args[0], args[1])
    case .cast: return "(\(c))\(args[0])"
    }
  }

  /// A C++ double literal that reads back as `x` exactly (hexadecimal), or an infinity or NaN.
  private static func literal(_ x: Double) -> String {
    if x.isNaN { return "(0.0 / 0.0)" }
    if x.isInfinite { return x > 0 ? "(1.0 / 0.0)" : "(-1.0 / 0.0)" }
    return String(format: "%a", x)
  }
}

extension CUDABackend {
  /// The generated CUDA source of `op` (for a compiled program's dump), when its operands are
  /// read in a way the generator covers.
  public func generatedSource(for op: FusedElementwise, inputs: [TensorType]) -> String? {
    FusedKernelSource.family(for: op, inputs: inputs).map { f in
      f.source.components(separatedBy: "KERNEL fused_").last.map { "KERNEL fused_" + $0 } ?? f.source
    }
  }
}
