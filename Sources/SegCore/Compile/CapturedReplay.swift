import Foundation

// MARK: - Options

/// How a compiled function's replays are captured on a backend that captures graphs
/// (`GraphCapturingBackend`): the first replay records the whole program as one graph, later
/// replays launch it (one host request, plus a copy per input whose buffer moved and one upload of
/// the step scalars).
public struct CaptureOptions: Sendable {
  /// Outputs whose value is the next call's input (weights, optimizer moments), as (output,
  /// input) positions: the kernel that makes the output writes it over its input buffer where it
  /// can (`InPlaceOutputs`), else the graph ends by copying the output into that buffer; the
  /// returned tensor is that buffer, so that passing it back costs no copy.
  public var carried: [(output: Int, input: Int)]

  /// Options carrying `carried` (none by default).
  public init(carried: [(output: Int, input: Int)] = []) { self.carried = carried }
}

// MARK: - A program's capture

/// The captured graph of one program and the buffers it runs over. The graph's addresses are
/// fixed, so the capture owns them: a buffer per input (the call's inputs are copied in when they
/// are elsewhere), its own arena for the planned values, a buffer of step-scalar words, and the
/// outputs' buffers. A returned output is valid until the next call, which overwrites it (as
/// PyTorch's CUDA graphs' static outputs): read or keep what you need before calling again.
public final class ProgramCapture: @unchecked Sendable {
  /// The options it was made with.
  public let options: CaptureOptions
  /// Why the program runs uncaptured, when it does.
  public private(set) var refusal: CaptureRefusal?
  /// The graph, once captured.
  public var graph: (any CapturedGraph)? { state?.graph }
  /// How many times the graph was launched.
  public private(set) var launches = 0

  private struct State {
    let graph: any CapturedGraph
    let inputs: [any DeviceStorage]
    let outputs: [any DeviceStorage]
    let arena: (any DeviceArena)?
    let scalarBuffer: (any DeviceStorage)?
    let scalarNames: [String]
    /// Every other buffer the graph's work touches that was still held when the capture ended
    /// (a value no instruction reads, say): let go now, it would go back to the allocator while
    /// each launch still writes it.
    let retained: [any DeviceStorage]
  }
  private var state: State?
  /// The buffer each input was copied from at the last call, held so that its identity stays its own.
  private var lastSources: [(any DeviceStorage)?] = []
  private let lock = Lock()

  /// A capture with `options`, made at the program's first replay.
  public init(options: CaptureOptions) { self.options = options }

  /// The program's outputs on `inputs`: the graph launched (captured first when need be), or,
  /// where the backend cannot capture or the program refused, the kernels one by one.
  func run(_ program: Program, _ inputs: [Tensor], scalars: StepScalars) throws -> [Tensor] {
    try lock.withLock {
      guard refusal == nil, let backend = program.backend as? GraphCapturingBackend, backend.capturesGraphs else {
        return try program.runUncaptured(inputs, scalars: scalars)
      }
      let slots = try program.inputSlots(inputs)
      if state == nil {
        do {
          state = try capture(program, backend, slots, scalars)
        } catch let r as CaptureRefusal {
          refusal = r
          FileHandle.standardError.write(Data("compile: \(r)\n".utf8))
          return try program.runUncaptured(inputs, scalars: scalars)
        }
      }
      let s = state!
      // A buffer copied in at the last call is not copied again (the same weights or batch passed
      // twice): a kernel's output is written once, so the same buffer holds the same bytes. The
      // exception is another captured program's output, rewritten by its next launch: pass a copy.
      if lastSources.count != program.inputs.count { lastSources = Array(repeating: nil, count: program.inputs.count) }
      for (k, slot) in program.inputs.enumerated() {
        let source = slots[slot]!
        if source === s.inputs[k] || source === lastSources[k] { continue }
        try backend.copy(source, into: s.inputs[k], type: program.values[slot].type)
        lastSources[k] = source
      }
      if let buffer = s.scalarBuffer {
        try backend.uploadWords(try s.scalarNames.map { try word(scalars, $0) }, to: buffer)
      }
      if let profiler = OpProfiler.active {
        try profiler.measureGraphLaunch(nodes: s.graph.nodeCount, on: backend) { try backend.launch(s.graph) }
      } else {
        try backend.launch(s.graph)
      }
      launches += 1
      return zip(program.outputs, s.outputs).map { slot, storage in
        Tensor(node: Node(op: nil, inputs: [], type: program.values[slot].type, backend: backend, storage: storage))
      }
    }
  }

  /// Records the program into a graph over buffers of its own; nothing runs until it is launched.
  private func capture(
    _ program: Program, _ backend: any GraphCapturingBackend, _ callSlots: [(any DeviceStorage)?], _ scalars: StepScalars
  ) throws -> State {
    var slots = callSlots
    // The graph reads its inputs from buffers it owns; this call's are copied in before the launch.
    var inputs: [any DeviceStorage] = []
    for slot in program.inputs {
      let type = program.values[slot].type
      let buffer = try callSlots[slot].map { try backend.makeBuffer(type, like: $0) } ?? backend.makeBuffer(type)
      inputs.append(buffer)
      slots[slot] = buffer
    }
    let names = Set(program.instructions.flatMap { $0.bindings.map(\.scalar) }).sorted()
    var scalarBuffer: (any DeviceStorage)?
    if !names.isEmpty {
      let buffer = try backend.makeBuffer(TensorType([8 * names.count], .u8))
      try backend.uploadWords(try names.map { try word(scalars, $0) }, to: buffer)
      scalarBuffer = buffer
    }
    let bytes = program.memoryPlan?.arenaBytes ?? 0
    let arena = bytes > 0 ? try backend.makeArena(bytes: bytes) : nil
    let carried = Dictionary(options.carried.map { ($0.output, $0.input) }, uniquingKeysWith: { a, _ in a })
    try backend.beginCapture()
    let graph: any CapturedGraph
    var outputs: [any DeviceStorage] = []
    do {
      try program.execute(
        &slots, arena: arena, scalars: scalars, profiler: nil,
        deviceScalars: scalarBuffer.map { b in (b, Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })) },
        inPlace: program.inPlaceUpdates(carried).mapValues { InPlaceOutputs($0.mapValues { inputs[$0] }) })
      for (j, slot) in program.outputs.enumerated() {
        let value = slots[slot]!
        if let i = carried[j] {
          if value !== inputs[i] { try backend.copy(value, into: inputs[i], type: program.values[slot].type) }
          outputs.append(inputs[i])
        } else {
          outputs.append(value)
        }
      }
      graph = try backend.endCapture()
    } catch let r as CaptureRefusal {
      backend.abandonCapture()
      throw r
    } catch {
      backend.abandonCapture()
      throw CaptureRefusal(reason: "\(error)")
    }
    // The call's inputs are copied in by `run`, after the capture, as at every later call.
    return State(
      graph: graph, inputs: inputs, outputs: outputs, arena: arena, scalarBuffer: scalarBuffer, scalarNames: names,
      retained: slots.compactMap { $0 })
  }

  private func word(_ scalars: StepScalars, _ name: String) throws -> UInt64 {
    guard let value = scalars[name] else {
      throw TensorError(op: "compile", "the captured program needs the step scalar \"\(name)\"; pass it at every call")
    }
    return value.word
  }
}
