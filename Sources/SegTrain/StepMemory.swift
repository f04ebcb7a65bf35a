import Foundation
import SegCore
import SegNN

// MARK: - Memory of a training step

/// The memory one training step needs, from the model's layer shapes and the batch: the
/// activations the backward pass keeps and the gradients it makes of them (each element in the
/// compute type), the weights, their gradients and Adam's two moments (f32), and a workspace.
/// It is an estimate, checked in the tests against the CPU backend's measured peak for a few small
/// models: the measured peak is between a half and twice the estimate (0.8 to 1.3 when fitted).
public struct StepMemory: Sendable {
  /// The model trained.
  public let config: UNetConfig
  /// Images per step.
  public let batchSize: Int
  /// Bytes of one activation element: 4 in f32, 2 in f16 and bf16.
  public let elementBytes: Int

  /// Buffers per activation element the step holds at its peak: the backward pass frees each
  /// forward value once its cotangent is made, so one buffer per element remains (fitted to the
  /// CPU backend's measured peaks).
  static let buffersPerActivation = 1
  /// Channels are counted in blocks of this many, as the CPU backend's blocked layouts store them.
  static let channelBlock = 16
  /// Workspace beyond the activations: convolution scratch, reductions, the host batch.
  static let workspaceBytes = 64 << 20

  /// The estimate for `config` at `batchSize` images a step, activations in `computeType`.
  public init(config: UNetConfig, batchSize: Int, computeType: DType = .f32) {
    (self.config, self.batchSize, elementBytes) = (config, batchSize, computeType.byteSize)
  }

  /// Activation elements of one image: every layer's output, level by level.
  public var activationsPerImage: Int {
    let c = config
    guard let g = c.geometry(input: c.inputSize) else { return 0 }
    func blocks(_ channels: Int) -> Int { (channels + StepMemory.channelBlock - 1) / StepMemory.channelBlock * StepMemory.channelBlock }
    var n = c.inputSize * c.inputSize * blocks(c.inputChannels)
    for level in 0..<c.depth {
      let s = g.skips[level], f = blocks(c.filters(level: level))
      n += 4 * s * s * f + (s / 2) * (s / 2) * f  // two convs and their ReLUs, then the pool
    }
    n += 4 * g.bottleneck * g.bottleneck * blocks(c.filters(level: c.depth))
    var side = g.bottleneck
    for level in stride(from: c.depth - 1, through: 0, by: -1) {
      side *= 2
      let f = blocks(c.filters(level: level))
      n += side * side * f + side * side * 2 * f + 4 * side * side * f  // up-conv, concatenation, two convs
    }
    return n + 3 * g.output * g.output * blocks(c.classes)  // logits, softmax, the one-hot targets
  }

  /// Bytes of the weights, their gradients and Adam's moments, all f32.
  public var parameterBytes: Int { config.parameterCount * 4 * 4 }

  /// Bytes of the batch's activations, kept and differentiated.
  public var activationBytes: Int {
    let (product, overflow) = batchSize.multipliedReportingOverflow(by: activationsPerImage * elementBytes * StepMemory.buffersPerActivation)
    return overflow ? Int.max / 4 : product
  }

  /// The estimate in bytes.
  public var bytes: Int { activationBytes + parameterBytes + StepMemory.workspaceBytes }

  /// The largest batch whose step fits in `available` bytes; 0 when not even one image does.
  public func largestBatch(fitting available: Int) -> Int {
    let perImage = max(activationsPerImage * elementBytes * StepMemory.buffersPerActivation, 1)
    return max(available - parameterBytes - StepMemory.workspaceBytes, 0) / perImage
  }

  /// Refuses a step that cannot fit in `available` bytes (of `what`, e.g. "available host
  /// memory"), with the estimate, what is available and the largest batch that fits.
  public func check(available: Int, what: String) throws {
    guard bytes > available else { return }
    let largest = largestBatch(fitting: available)
    let advice = largest > 0 ? "the largest batch that fits is about \(largest)" : "not even one image fits: choose a smaller model or input size"
    throw SettingError(
      .batchSize, value: batchSize,
      "a training step needs about \(StepMemory.gib(bytes)) (activations, gradients, Adam state and workspace), more than the \(StepMemory.gib(available)) of \(what); \(advice)")
  }

  /// Bytes as "12.3 GiB" (or MiB below one GiB).
  static func gib(_ bytes: Int) -> String {
    bytes >= 1 << 30 ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
  }
}

// MARK: - Memory available

/// What memory a run can still take.
public enum AvailableMemory {
  /// The host's available memory (Linux's /proc/meminfo MemAvailable), in bytes; nil where it
  /// cannot be read.
  public static func host() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
    return parseMemAvailable(text)
  }

  /// MemAvailable of a /proc/meminfo text, in bytes.
  public static func parseMemAvailable(_ text: String) -> Int? {
    for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
      let fields = line.split(separator: " ")
      guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
      return kb * 1024
    }
    return nil
  }
}
