// MARK: - Backends that capture a replay

/// A recorded list of device work that runs whole from one host request (a CUDA graph): the
/// kernels, library calls and copies queued between `beginCapture` and `endCapture`, over the
/// addresses they had then. It keeps every buffer its work touches alive while it exists.
public protocol CapturedGraph: AnyObject {
  /// How many pieces of work (kernel launches, library calls, copies) one launch runs.
  var nodeCount: Int { get }
}

/// A backend whose queued work can be captured once and launched again (`CapturedGraph`), so that
/// a compiled program's replay is one host request instead of one per kernel.
public protocol GraphCapturingBackend: Backend {
  /// Whether captures can be made now (a device that cannot capture says no before any work).
  var capturesGraphs: Bool { get }
  /// From now on, work is recorded into a graph instead of running; a host read or an upload of
  /// changing bytes inside a capture fails (the capture is then abandoned).
  func beginCapture() throws
  /// Ends the capture and returns its graph (nothing of it has run yet).
  func endCapture() throws -> any CapturedGraph
  /// Ends a capture that failed, discarding what it recorded (a no-op when none is under way).
  func abandonCapture()
  /// Queues the graph's work, all of it, as one launch.
  func launch(_ graph: any CapturedGraph) throws
  /// A new buffer for a value of `type` (uninitialised), not placed in any arena.
  func makeBuffer(_ type: TensorType) throws -> any DeviceStorage
  /// A new buffer for a value of `type` that `source` will be copied into: a backend that keeps
  /// some values in a layout of its own makes it in `source`'s.
  func makeBuffer(_ type: TensorType, like source: any DeviceStorage) throws -> any DeviceStorage
  /// Queues a copy of `source`'s bytes (a value of `type`) into `destination`.
  func copy(_ source: any DeviceStorage, into destination: any DeviceStorage, type: TensorType) throws
  /// Queues an upload of `words` (8 bytes each) into `buffer`, made by `makeBuffer` of as many `u8` x 8.
  func uploadWords(_ words: [UInt64], to buffer: any DeviceStorage) throws
}

extension GraphCapturingBackend {
  /// `makeBuffer(type)`: every value has one layout.
  public func makeBuffer(_ type: TensorType, like source: any DeviceStorage) throws -> any DeviceStorage {
    try makeBuffer(type)
  }
}

// MARK: - Outputs written over their operands

/// In a captured replay, the outputs of the instruction running now that may be written into a
/// carried input's buffer (output position -> that buffer): a carried output (a weight, an
/// optimizer moment, a weight's half copy) whose input is the graph's own buffer, read by nothing
/// after this instruction (this one may read it: a kernel that takes the offer reads each element
/// before it writes it). A kernel that can update in place (the multi-tensor Adam) returns those
/// buffers as its outputs, so the graph ends with no copy back; one that does not simply allocates.
public final class InPlaceOutputs: @unchecked Sendable {
  /// The offer to the instruction running now; nil outside a capture.
  @TaskLocal public static var current: InPlaceOutputs?
  /// Output position -> the buffer it may be written into.
  public let buffers: [Int: any DeviceStorage]

  init(_ buffers: [Int: any DeviceStorage]) { self.buffers = buffers }
}

// MARK: - Step scalars read from the device

/// Where the step scalars of a captured replay live: a device buffer of 8-byte words (a real as
/// its Double bits, a seed as its 64 bits), rewritten by one upload before each launch. While a
/// captured program's instruction with bindings runs, this names the word of each bound
/// attribute; a kernel that can read the attribute from device memory takes it
/// (`take(_:)`) and launches its reading variant. An attribute no kernel took would be baked into
/// the graph as the traced value, so the capture is refused (`CaptureRefusal`).
public final class StepScalarPlacement: @unchecked Sendable {
  /// The placement of the instruction running now, in a captured replay.
  @TaskLocal public static var current: StepScalarPlacement?

  /// The buffer of words.
  public let buffer: any DeviceStorage
  private var words: [ScalarBinding.Attribute: Int]

  init(buffer: any DeviceStorage, words: [ScalarBinding.Attribute: Int]) { (self.buffer, self.words) = (buffer, words) }

  /// The word index of `attribute` for the kernel running now, handed out once; nil when the
  /// attribute is not bound (the kernel then uses its by-value form).
  public static func take(_ attribute: ScalarBinding.Attribute) -> (buffer: any DeviceStorage, word: Int)? {
    guard let p = current, let w = p.words.removeValue(forKey: attribute) else { return nil }
    return (p.buffer, w)
  }

  /// The attributes no kernel took.
  var untaken: [ScalarBinding.Attribute] { Array(words.keys) }
}

/// Why a program's replay is not captured: it runs uncaptured, as before, and says so once.
public struct CaptureRefusal: Error, CustomStringConvertible {
  /// The reason, naming the op or the call that cannot be captured.
  public let reason: String
  public var description: String { "the step is not captured as a graph: \(reason); it runs uncaptured" }
}

extension StepScalar {
  /// The 8-byte word a kernel reads: a real's Double bits, a seed's bits.
  var word: UInt64 {
    switch self {
    case .bits(let b): return b
    case .real(let r): return r.bitPattern
    }
  }
}
