import Foundation
import SegCore
import SegNN
import SegTrain
import Testing

@testable import SegCUDA

// MARK: - A stand-in for CUPTI over the recording device

/// An `ActivityControl` that plays CUPTI over a `RecordingDevice`: every launch or library call
/// the device logs while an op id is pushed is an API call with a correlation id of its own, paired
/// with that id by an external correlation record (in a "host" buffer) and run as a kernel of the
/// launch's name taking 1 us (in a "device" buffer). Flushing hands over the device buffer first,
/// so kernels wait for their pairings, as they may with CUPTI.
final class RecordedActivityControl: ActivityControl, @unchecked Sendable {
  let device: RecordingDevice
  private var completed: (@Sendable (UnsafeMutablePointer<UInt8>, Int) -> Void)?
  private var stack: [UInt64] = []
  private var mark = 0
  private var correlation: UInt32 = 100
  private var host = SyntheticActivityBuffer()
  private var kernels = SyntheticActivityBuffer()
  private(set) var pushes = 0
  private(set) var enabled = false

  init(device: RecordingDevice) {
    self.device = device
    device.logsRequests = true
  }

  var source: String { "recorded launches" }
  var walk: ActivityBufferWalk { .packed }

  func enable(completed: @escaping @Sendable (UnsafeMutablePointer<UInt8>, Int) -> Void) throws {
    self.completed = completed
    enabled = true
  }

  /// The launches logged since the last push or pop, as API calls of the op on top (none outside ops).
  private func settle() {
    let log = device.lock.withLock { device.logged }
    for request in log[min(mark, log.count)...] {
      let name: String
      switch request {
      case .launch(let k, _, _): name = k.name
      case .library(let n): name = n
      default: continue
      }
      correlation += 1
      if let op = stack.last { host.external(op: op, correlation: correlation) }
      let start = UInt64(correlation) * 10_000
      kernels.kernel(name, start: start, end: start + 1_000, correlation: correlation)
    }
    mark = log.count
  }

  func push(_ id: UInt64) {
    settle()
    stack.append(id)
    pushes += 1
  }

  func pop() {
    settle()
    stack.removeLast()
  }

  func flush() throws {
    settle()
    for buffer in [kernels, host] { buffer.withBuffer { completed?($0, $1) } }
    (kernels, host) = (SyntheticActivityBuffer(), SyntheticActivityBuffer())
  }

  func disable() { enabled = false }
}

/// A backend that passes everything to a CUDA backend and counts the waits asked of it.
final class SynchronizationCounter: Backend, @unchecked Sendable {
  let inner: CUDABackend
  private(set) var synchronizations = 0
  init(_ inner: CUDABackend) { self.inner = inner }

  var name: String { inner.name }
  func upload(_ host: HostTensor) throws -> any DeviceStorage { try inner.upload(host) }
  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor { try inner.download(storage, type: type) }
  var kernels: KernelTable { inner.kernels }
  func synchronize() throws {
    synchronizations += 1
    try inner.synchronize()
  }
  var halfPrecisionConvolutions: Bool { inner.halfPrecisionConvolutions }
  var multiTensorOptimizer: Bool { inner.multiTensorOptimizer }
}

// MARK: - Tests

@Suite struct CUPTIProfileTests {
  /// A trainer of the small U-Net on the null device behind `backend`, and one constant batch.
  static func setUp(_ backend: any Backend) throws -> (Trainer, Tensor, Tensor) {
    let config = StepCount.small()
    let model = try UNet(config: config, seed: 1, on: backend)
    var options = TrainingOptions()
    (options.batchSize, options.learningRate) = (2, 1e-3)
    let trainer = Trainer(model: model, optimizer: Adam(learningRate: 1e-3), options: options, lossScaler: nil)
    let s = config.inputSize, o = config.outputSize
    let images = try Tensor(repeating: 0.25, shape: [2, s, s, 1], on: backend)
    var onehot = [Float](repeating: 0, count: 2 * o * o * 2)
    for i in stride(from: 0, to: onehot.count, by: 2) { onehot[i + (i / 2) % 2] = 1 }
    return (trainer, images, try Tensor(shape: [2, o, o, 2], floats: onehot, on: backend))
  }

  /// A training step profiled through the tracer waits for the device not once and reads from it
  /// no more than the unprofiled step; the one wait comes when the table is made, and every launch
  /// of the step is in the kernel table, attributed to the op that queued it.
  @Test func aTracedProfileDoesNotWaitBetweenOps() throws {
    let device = RecordingDevice(wrapping: nil)
    let backend = SynchronizationCounter(CUDABackend(device: device, convolutions: HostConvolutions(computes: false)))
    let (trainer, images, targets) = try Self.setUp(backend)
    _ = try trainer.step(images: images, targets: targets)
    device.reset()
    _ = try trainer.step(images: images, targets: targets)
    let plain = (device.counts, backend.synchronizations)

    let control = RecordedActivityControl(device: device)
    let tracer = CUPTITracer(control: control) { [backend] in try backend.synchronize() }
    let profiler = try OpProfiler(tracer: tracer)
    #expect(control.enabled && profiler.mode == .deviceActivity(source: "recorded launches"))
    device.reset()
    try OpProfiler.record(into: profiler) { _ = try trainer.step(images: images, targets: targets) }
    let traced = device.counts
    #expect(backend.synchronizations == plain.1, "the traced step waited \(backend.synchronizations - plain.1) times")
    #expect(traced.downloads == plain.0.downloads && traced.launches == plain.0.launches)
    #expect(control.pushes > 0 && control.pushes == profiler.ranked.reduce(0) { $0 + $1.entry.calls })

    let table = profiler.table()
    print(table)
    #expect(backend.synchronizations == plain.1 + 1, "one wait, to read the records")
    #expect(table.contains("device time of each op's kernels, copies and fills from recorded launches, with no wait between ops"))
    // Every launch and library call ran as a 1 us kernel, each in an op.
    let kernels = Dictionary(uniqueKeysWithValues: profiler.rankedKernels.map { ($0.name, $0.entry.calls) })
    #expect(kernels == traced.byName, "kernel table \(kernels) against the device's \(traced.byName)")
    let opSeconds = profiler.ranked.reduce(0) { $0 + $1.entry.seconds }
    #expect(abs(opSeconds - Double(traced.launches + traced.libraryCalls) * 1e-6) < 1e-9)
    #expect(table.contains("outside ops                  0"))
    let conv = try #require(profiler.ranked.first { $0.kind == .conv2d }?.entry)
    #expect(conv.calls > 0 && conv.seconds > 0)
    let detail = profiler.rankedByOutput.filter { $0.op.hasPrefix("conv2d ") }
    #expect(detail.reduce(0) { $0 + $1.entry.calls } == conv.calls && abs(detail.reduce(0) { $0 + $1.entry.seconds } - conv.seconds) < 1e-12)
    #expect(profiler.kernelTable().contains("multiAdam_f32"))
  }

  /// Without a tracer the same profile waits before and after every op: the check above can fail.
  @Test func theWaitingProfileWaitsAroundEveryOp() throws {
    let device = RecordingDevice(wrapping: nil)
    let backend = SynchronizationCounter(CUDABackend(device: device, convolutions: HostConvolutions(computes: false)))
    let (trainer, images, targets) = try Self.setUp(backend)
    _ = try trainer.step(images: images, targets: targets)
    let before = backend.synchronizations
    let profiler = OpProfiler()
    try OpProfiler.record(into: profiler) { _ = try trainer.step(images: images, targets: targets) }
    let ops = profiler.ranked.reduce(0) { $0 + $1.entry.calls }
    #expect(ops > 0 && backend.synchronizations - before == 2 * ops)
    #expect(profiler.mode == .waiting && !profiler.table().contains("device time"))
  }

  /// A CUDA backend whose tracer cannot be had profiles by waiting and says why at the top of the
  /// table; on the emulator or the null device (nothing queued) it has no tracer and says nothing.
  @Test func aMissingTracerIsNamedInTheHeader() throws {
    final class Untraceable: Backend, ActivityTracingBackend, @unchecked Sendable {
      let inner: CUDABackend
      init(_ inner: CUDABackend) { self.inner = inner }
      var name: String { inner.name }
      func upload(_ host: HostTensor) throws -> any DeviceStorage { try inner.upload(host) }
      func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor { try inner.download(storage, type: type) }
      var kernels: KernelTable { inner.kernels }
      func makeActivityTracer() throws -> (any DeviceActivityTracer)? {
        throw CUDAError(.libraryNotFound, "CUPTI was not found")
      }
    }
    let cuda = CUDABackend(device: RecordingDevice(wrapping: nil), convolutions: nil)
    #expect(try cuda.makeActivityTracer() == nil)
    let backend = Untraceable(cuda)
    let profiler = OpProfiler()
    let x = try Tensor(repeating: 1, shape: [4], on: backend)
    try OpProfiler.record(into: profiler) { _ = try add(x, x).host() }
    #expect(profiler.mode == .waitingWithoutTracer(reason: "CUPTI was not found"))
    let table = profiler.table()
    #expect(table.hasPrefix("wall time per op, waiting for the device before and after each op"), "\(table)")
    #expect(table.contains("CUPTI was not found"))
  }
}
