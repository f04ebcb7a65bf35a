import Dispatch
import Foundation
import SegData
import SegNN

// MARK: - Stopping on a signal

/// The error of a run stopped by SIGINT or SIGTERM after saving its checkpoint; a command line
/// exits with 128 + `signal`, as a shell does for a process the signal ended.
public struct TrainingStopped: Error, CustomStringConvertible {
  /// The signal that asked the run to stop.
  public let signal: Int32
  /// Updates done (and saved, when the run has a model directory).
  public let step: Int
  /// Where the checkpoint was saved; nil without a model directory.
  public let checkpoint: URL?

  /// "stopped by SIGINT after step N; checkpoint ... saved, continue with ...".
  public var description: String {
    let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
    return "stopped by \(name) after step \(step)"
      + (checkpoint.map { "; checkpoint \($0.path) saved, continue with the same command and --resume-training" } ?? "")
  }
}

/// Turns SIGINT and SIGTERM during training into a clean stop: the update in progress finishes,
/// the checkpoint is saved (unless the checkpointer just saved this step) and the run ends with
/// `TrainingStopped`. Outside training the signals keep their default action. Put it after the
/// `Checkpointer`.
public final class SignalStopper: TrainingCallback, @unchecked Sendable {
  private let policy: CheckpointPolicy
  private let precision: Precision
  private let lock = NSLock()
  private var received: Int32?
  private var sources: [any DispatchSourceSignal] = []
  /// The run's augmentation, recorded in the checkpoint.
  private var augmentation: AugmentationOptions?

  /// Whether this process saves (in a data-parallel run only rank 0 does).
  public var saves = true
  /// In a data-parallel run: whether any rank received a signal, told whether this one did (an
  /// all-reduce every step), so that every rank stops after the same update; nil runs alone.
  public var agreement: ((Bool) throws -> Bool)?

  /// A stopper saving where `policy` says, recording `precision` in the checkpoint.
  public init(policy: CheckpointPolicy, precision: Precision) { (self.policy, self.precision) = (policy, precision) }

  /// The signal received since training started, if any.
  public var requested: Int32? { lock.withLock { received } }

  public func runStarted(_ run: RunContext) throws {
    if run.settings.mode.trains { augmentation = run.settings.augmentation }
  }

  public func trainingStarted(_ loop: TrainingLoop) throws {
    for sig in [SIGINT, SIGTERM] {
      signal(sig, SIG_IGN)  // the dispatch source sees it; the default action would end the process
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler { [weak self] in self?.lock.withLock { if self?.received == nil { self?.received = sig } } }
      source.resume()
      sources.append(source)
    }
  }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    let own = requested
    guard try agreement.map({ try $0(own != nil) }) ?? (own != nil) else { return }
    let sig = own ?? SIGTERM
    if saves, !policy.savesAfter(step: event.step) {
      try loop.trainer.readDeviceState()
      try policy.save(loop.model, loop.optimizer, precision: precision, lossScale: loop.trainer.lossScaler?.state, augmentation: augmentation)
    }
    restore()
    throw TrainingStopped(signal: sig, step: event.step, checkpoint: policy.url)
  }

  public func trainingEnded(_ loop: TrainingLoop) throws { restore() }

  deinit { restore() }

  /// Back to the signals' default actions.
  private func restore() {
    guard !sources.isEmpty else { return }
    for source in sources { source.cancel() }
    sources = []
    signal(SIGINT, SIG_DFL)
    signal(SIGTERM, SIG_DFL)
  }
}
