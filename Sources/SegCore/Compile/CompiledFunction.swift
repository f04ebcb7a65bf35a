import Foundation

// MARK: - Compiled function

/// A step function compiled by tracing, as MLX's `compile` and `jax.jit`: the first call for given
/// input types runs `body` on abstract values (types only: no kernel runs, no buffer is made)
/// while recording its ops, runs the passes (`CompilerPasses.standard`) over the program, running
/// it once on the inputs where the passes first need the values' layouts (`Program.firstRun`,
/// which computes the call's outputs), and keeps it; later calls with the same input types
/// (and variant) replay the program: no graph is built, no gradient walk runs, and every value is
/// let go at its planned last use. Other input types trace again, or fail when `strict`.
///
/// `body` must depend on its inputs only through tensor ops and on per-step numbers only through
/// its `StepScalars` (see `ProgramRecorder`): reading a traced value on the host fails, and any
/// other number it reads is frozen at trace time.
public final class CompiledFunction {
  /// The function: input tensors and the step's scalars to output tensors.
  public typealias Body = ([Tensor], StepScalars) throws -> [Tensor]

  /// The function's name, for messages and dump files.
  public let name: String
  /// When true, a call whose input types differ from the first trace's throws instead of tracing.
  public let strict: Bool
  /// The passes run over each new trace, in order.
  public let passes: [any CompilerPass]
  /// Where each trace is printed before and after every pass; nil prints nothing.
  public let dumpDirectory: URL?
  /// How replays are captured as one graph on a backend that can (nil: never).
  public let capture: CaptureOptions?
  /// Whether the outputs are planned in the arena, where the caller lets them go before the next
  /// call (a training step's gradients): they then take the bytes of values dead by the time they
  /// are made instead of buffers of their own. Only on a backend that is `ArenaValueCounting`.
  public let outputsInArena: Bool
  /// Inputs the caller gives up at every call, as (output, input) positions: the replay offers the
  /// output's kernel the input's buffer (`InPlaceOutputs`), and one that takes it (the CPU's Adam)
  /// writes the new value over the old. The caller must read no donated input after the call.
  public let donated: [(output: Int, input: Int)]
  /// How many times `body` was traced.
  public private(set) var traceCount = 0
  private let body: Body
  private var programs: [Key: Program] = [:]

  private struct Key: Hashable {
    let variant: String
    let types: [TensorType]
    let backend: ObjectIdentifier
  }

  /// Compiles `body`, named `name`; `dumpDirectory` defaults to the UNET_DUMP_GRAPH variable's;
  /// `outputsInArena` places the outputs in the replay arena and `donated` lets outputs be written
  /// over inputs the caller gives up (see the properties).
  public init(
    _ name: String, strict: Bool = false, passes: [any CompilerPass] = CompilerPasses.standard,
    dumpDirectory: URL? = GraphDump.environmentDirectory, capture: CaptureOptions? = nil, outputsInArena: Bool = false,
    donated: [(output: Int, input: Int)] = [], _ body: @escaping Body
  ) {
    (self.name, self.strict, self.passes, self.dumpDirectory, self.body) = (name, strict, passes, dumpDirectory, body)
    (self.capture, self.outputsInArena, self.donated) = (capture, outputsInArena, donated)
  }

  /// The outputs of the function on `inputs`: traced and run once the first time for these input
  /// types and `variant` (a caller's name for a choice that changes the ops, say "unscaled"),
  /// replayed afterwards.
  public func callAsFunction(_ inputs: [Tensor], scalars: StepScalars = [:], variant: String = "") throws -> [Tensor] {
    guard let backend = inputs.first?.backend else {
      throw TensorError(op: "compile", "\(name): a compiled function needs at least one input tensor")
    }
    let key = Key(variant: variant, types: inputs.map(\.type), backend: ObjectIdentifier(backend))
    if let program = programs[key] { return try program.run(inputs, scalars: scalars) }
    if strict, let known = programs.keys.first {
      throw TensorError(
        op: "compile", operands: key.types,
        "\(name) was compiled for \(known.types.map(\.description).joined(separator: ", ")) (\(known.variant.isEmpty ? "no variant" : known.variant)) and is strict: other input shapes or dtypes are not traced again; make a new compiled function or turn strict off")
    }
    var program = try traceProgram(inputs, on: backend) { try body($0, scalars) }
    traceCount += 1
    program.placesOutputs = outputsInArena && backend is any ArenaValueCounting
    program.donations = Dictionary(donated.map { ($0.output, $0.input) }, uniquingKeysWith: { a, _ in a })
    let dump = dumpDirectory.map { GraphDump(directory: $0, prefix: "\(name)-\(traceCount)") }
    var outputs: [Tensor] = []
    try CompilerPasses.run(passes, on: &program, scalars: scalars, dump: dump) { program in
      outputs = try program.firstRun(inputs, scalars: scalars)
    }
    if let capture, backend is any GraphCapturingBackend { program.capture = ProgramCapture(options: capture) }
    programs[key] = program
    return outputs
  }

  /// The program kept for `inputs`' types and `variant`, if traced.
  public func program(for types: [TensorType], variant: String = "", on backend: any Backend) -> Program? {
    programs[Key(variant: variant, types: types, backend: ObjectIdentifier(backend))]
  }

  /// Every program kept, in no particular order.
  public var allPrograms: [Program] { Array(programs.values) }
}
