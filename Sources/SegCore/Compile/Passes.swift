import Foundation

// MARK: - Passes

/// One rewrite or analysis of a traced program. Passes are short and run in the order of
/// `CompilerPasses.standard`; each can be printed before and after (`GraphDump`).
public protocol CompilerPass: Sendable {
  /// A short name for dumps, e.g. "dead-values".
  var name: String { get }
  /// Rewrites or annotates `program`; `scalars` are the step scalars it was traced with.
  func run(_ program: inout Program, scalars: StepScalars) throws
  /// Whether the pass reads how the backend laid the values out (their footprints, views and
  /// contiguous concats), which the first run of the program learns (`Program.firstRun`).
  var needsFootprints: Bool { get }
}

extension CompilerPass {
  /// Most passes rewrite by types and ops alone.
  public var needsFootprints: Bool { false }
}

/// The passes of `compile`, in the order they run.
public enum CompilerPasses {
  /// Checking the step scalars' bindings comes first (later passes may copy ops and must copy
  /// their bindings); rewrites that change which values exist (the skip gradient's ops joined, which
  /// must come before elementwise fusion takes its sum, elementwise fusion, a convolution's
  /// epilogue fused into it, cheap values made again for the backward pass, a concat written in
  /// place by its producers) belong after dead values and before memory planning, which must see
  /// the final instructions; validation comes last.
  public static let standard: [any CompilerPass] = [
    CheckStepScalars(),
    RemoveDeadValues(),
    FuseSkipGradient(),
    FuseElementwise(),
    RecomputeCheapValues(),
    ConcatInPlace(),
    WriteInPlace(),
    PlanMemory(),
    ValidateMemoryPlan(),
  ]

  /// Runs `passes` over `program` in order, writing the program before the first and after each
  /// to `dump` when given. `firstRun`, when given, runs once before the first pass that needs
  /// footprints (or after the last pass when none does): the passes before it rewrite the traced
  /// program by types alone, so the first run already computes with the fused kernels.
  public static func run(
    _ passes: [any CompilerPass], on program: inout Program, scalars: StepScalars, dump: GraphDump? = nil,
    firstRun: ((inout Program) throws -> Void)? = nil
  ) throws {
    try dump?.write(program, stage: 0, name: "trace")
    var ran = firstRun == nil
    for (i, pass) in passes.enumerated() {
      if !ran, pass.needsFootprints {
        try firstRun!(&program)
        ran = true
      }
      try pass.run(&program, scalars: scalars)
      try dump?.write(program, stage: i + 1, name: pass.name)
    }
    if !ran { try firstRun!(&program) }
  }
}

// MARK: - Dumps

/// Where programs are printed between passes: one text file per stage,
/// `<function>-<trace>-<stage>-<pass>.txt`, in `directory`.
public struct GraphDump: Sendable {
  /// The folder the files go to (made when missing).
  public let directory: URL
  /// The compiled function's name and its trace number, which prefix every file.
  public let prefix: String

  /// A dump into `directory`, naming files after `prefix`.
  public init(directory: URL, prefix: String) {
    self.directory = directory
    self.prefix = prefix
  }

  /// The folder named by the environment variable UNET_DUMP_GRAPH, if set and not empty.
  public static var environmentDirectory: URL? {
    guard let path = ProcessInfo.processInfo.environment["UNET_DUMP_GRAPH"], !path.isEmpty else { return nil }
    return URL(fileURLWithPath: path)
  }

  /// Writes `program` as it is after stage `stage` (`name`).
  func write(_ program: Program, stage: Int, name: String) throws {
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      let file = directory.appendingPathComponent(String(format: "%@-%02d-%@.txt", prefix, stage, name))
      try (program.description + "\n").write(to: file, atomically: true, encoding: .utf8)
    } catch {
      throw TensorError(op: "compile", "cannot write the compiled program to \(directory.path) (\(error.localizedDescription)); pass a writable folder to --dump-graph or UNET_DUMP_GRAPH")
    }
  }
}

// MARK: - Checking step scalars

/// Checks the bindings the trace recorded where each step scalar was marked
/// (`markingStepScalar`): every bound scalar was passed to the trace, and each bound attribute
/// held the scalar's traced value (an op marked with the wrong number would replay another one).
/// Nothing is found by value: two attributes with one value stay apart.
public struct CheckStepScalars: CompilerPass {
  public let name = "step-scalars"
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    for ins in program.instructions where !ins.bindings.isEmpty {
      let values = Dictionary(bindableAttributes(of: ins.op).map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
      for b in ins.bindings {
        guard let traced = scalars[b.scalar] else {
          throw TensorError(op: "compile", "\(ins.op) is marked with the step scalar \"\(b.scalar)\", which the trace was not given; pass it at every call")
        }
        guard values[b.attribute] == traced else {
          throw TensorError(
            op: "compile",
            "\(ins.op) is marked with the step scalar \"\(b.scalar)\" = \(traced), but its \(b.attribute.rawValue) holds \(values[b.attribute].map(\.description) ?? "nothing"); make the op from the scalar's value")
        }
      }
    }
  }
}

// MARK: - Dead values

/// Removes the instructions none of whose outputs reach the function's outputs.
public struct RemoveDeadValues: CompilerPass {
  public let name = "dead-values"
  public init() {}

  public func run(_ program: inout Program, scalars: StepScalars) throws {
    var live = Set(program.outputs)
    var kept: [Program.Instruction] = []
    for ins in program.instructions.reversed() where ins.outputs.contains(where: live.contains) {
      live.formUnion(ins.inputs)
      kept.append(ins)
    }
    program.instructions = kept.reversed()
  }
}
