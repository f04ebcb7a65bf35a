import SegCore
import SegNN

// MARK: - The fused step's state on the device

/// What the host knew of the loss scaler and Adam's count when it made or last read the device's
/// state: a change from outside (a checkpoint restored into the trainer) makes the state again.
struct HostView: Equatable {
  var scaler: LossScaler.State?
  var step: Int
}

extension Trainer {
  /// The host's view of the state now.
  var hostView: HostView { HostView(scaler: lossScaler?.state, step: optimizer.step) }

  /// The state the next fused step reads: the last one's output while steps are unread, else
  /// made (one upload) from the host's scaler and Adam's count when those changed since.
  func currentDeviceState(on backend: any Backend) throws -> Tensor {
    if let s = deviceState, unreadSteps > 0 || s.hostView == hostView { return s.tensor }
    let scaler = lossScaler?.state
    let words = StepState.initial(
      scale: scaler?.scale ?? 1, goodSteps: scaler?.goodSteps ?? 0, skippedSteps: scaler?.skippedSteps ?? 0, appliedSteps: optimizer.step)
    let tensor = try Tensor(shape: [StepState.count], floats: words, on: backend)
    deviceState = (tensor, hostView)
    return tensor
  }

  /// Records a queued fused step's new state.
  func queued(_ state: Tensor) {
    deviceState = (state, deviceState?.hostView ?? hostView)
    unreadSteps += 1
    lastMetrics = nil
  }

  /// The 1-element seed of the backward pass, the state's loss scale, in `loss`'s shape and dtype.
  func lossScaleSeed(_ state: Tensor, like loss: Tensor) throws -> Tensor {
    try withoutGradients {
      let scale = try reshape(slice(state, starts: [StepState.lossScale], sizes: [1]), loss.shape)
      return loss.dtype == .f32 ? scale : try cast(scale, to: loss.dtype)
    }
  }

  // MARK: Reading

  /// Brings the host's loss scaler and Adam's count up to date with the device (one read when fused
  /// steps are unread, none otherwise): before a checkpoint saves them.
  public func readDeviceState() throws {
    if unreadSteps > 0 { _ = try readStep() }
  }

  /// The last step's metrics: with steps queued on the device, one read of the state, which also
  /// brings the loss scaler and Adam's count up to date on the host; otherwise what the host
  /// decided. Throws the loss scaler's error when a queued step's gradients were inf or NaN at
  /// the minimum scale.
  public func readStep() throws -> StepMetrics {
    guard unreadSteps > 0, let (tensor, _) = deviceState else {
      guard let lastMetrics else { throw TensorError(op: "step", "no training step has run yet; call queueStep first") }
      return lastMetrics
    }
    let s = try tensor.host().floats
    lastReadState = s
    let applied = Int(s[StepState.appliedSteps])
    if s[StepState.failures] > 0 {
      throw LossScaler.overflowError(step: applied + 1, scale: Double(StepState.minimumScale), computeType: model.computeType)
    }
    if let scaler = lossScaler {
      lossScaler = scaler.restored(
        LossScaler.State(scale: Double(s[StepState.lossScale]), goodSteps: Int(s[StepState.goodSteps]), skippedSteps: Int(s[StepState.skippedSteps])))
    }
    optimizer.takeStep(applied)
    unreadSteps = 0
    deviceState = (tensor, hostView)
    let (ce, dice, penalty) = (Double(s[StepState.crossEntropy]), Double(s[StepState.dice]), Double(s[StepState.penalty]))
    let skipped = s[StepState.applied] == 0
    let metrics = StepMetrics(crossEntropy: ce, dice: dice, total: ce + dice + (skipped ? 0 : penalty), skipped: skipped)
    lastMetrics = metrics
    return metrics
  }

  /// Skipped steps in a row up to the last read (the device's count).
  var deviceSkippedInARow: Int { Int(lastReadState?[StepState.skippedInARow] ?? 0) }

  /// The means of the device's window (the updates since it was last taken) as last read, nil when
  /// it holds none; the window is cleared for the next steps (one upload, no read).
  func takeDeviceWindow() throws -> StepMetrics? {
    guard unreadSteps == 0, var s = lastReadState, let (tensor, view) = deviceState else { return nil }
    let n = s[StepState.windowSteps]
    guard n > 0 else { return nil }
    let means = StepMetrics(
      crossEntropy: Double(s[StepState.windowCrossEntropy] / n), dice: Double(s[StepState.windowDice] / n),
      total: Double(s[StepState.windowTotal] / n), steps: Int(n))
    for w in [StepState.windowCrossEntropy, StepState.windowDice, StepState.windowTotal, StepState.windowSteps] { s[w] = 0 }
    deviceState = (try Tensor(shape: [StepState.count], floats: s, on: tensor.backend), view)
    lastReadState = s
    return means
  }
}
