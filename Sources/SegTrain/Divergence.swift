import SegCore
import SegNN

// MARK: - Divergence

/// How a run notices that it diverged, and the error it stops with. The loss the trainer already
/// reads each step is checked (no extra download); the weights are checked once per checkpoint,
/// on the host copy the checkpoint is written from. A diverged model is never saved.
public enum Divergence {
  /// Loss-scaled steps skipped one after another after which an fp16 run counts as diverged: the
  /// scaler skips a step now and then by design, but not this many in a row.
  public static let defaultMaxSkippedStepsInARow = 20

  /// The error of a run whose loss became `loss` (inf or NaN) at update `step`.
  public static func lossError(step: Int, loss: Double, learningRate: Double) -> SettingError {
    SettingError(
      .learningRate, value: learningRate,
      "training diverged: the loss is \(loss) at step \(step); nothing was saved, an earlier checkpoint is kept. Try a lower \(Setting.learningRate) (e.g. \(lower(learningRate))), and resume from the last checkpoint with \(Setting.resume)")
  }

  /// The error of an fp16 run whose loss scaler skipped `skipped` steps in a row up to `step`.
  public static func skipsError(step: Int, skipped: Int, learningRate: Double) -> SettingError {
    SettingError(
      .learningRate, value: learningRate,
      "training diverged: the gradients were inf or NaN in \(skipped) loss-scaled steps in a row up to step \(step); nothing was saved. Try a lower \(Setting.learningRate) (e.g. \(lower(learningRate))) or \(Setting.precision) bf16 or fp32")
  }

  /// The error of a run whose weight `name` holds inf or NaN after `step` updates.
  public static func weightsError(step: Int, name: String, learningRate: Double) -> SettingError {
    SettingError(
      .learningRate, value: learningRate,
      "training diverged: weight \"\(name)\" holds inf or NaN after step \(step); the checkpoint was not written (an earlier one is kept). Try a lower \(Setting.learningRate) (e.g. \(lower(learningRate)))")
  }

  /// A tenth of `rate`, printed short.
  static func lower(_ rate: Double) -> String {
    rate.isFinite && rate > 0 ? "\(Float(rate / 10))" : "1e-4"
  }

  /// The name of the first tensor (in name order) holding an inf or NaN element; nil when all are
  /// finite. Integer tensors are finite.
  public static func firstNonFinite(_ tensors: [String: HostTensor]) -> String? {
    tensors.keys.sorted().first { !allFinite(tensors[$0]!.data) }
  }

  /// True when every element is finite.
  public static func allFinite(_ data: HostData) -> Bool {
    switch data {
    case .f64(let a): return a.allSatisfy(\.isFinite)
    case .f32(let a): return a.allSatisfy(\.isFinite)
    case .f16(let a): return a.allSatisfy(\.isFinite)
    case .bf16(let a): return a.allSatisfy { $0 & 0x7F80 != 0x7F80 }
    case .i32, .u8: return true
    }
  }
}
