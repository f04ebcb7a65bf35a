import Foundation

// MARK: - Console lines

/// The lines for people: each logging step's mean losses, rate and loss scale, and each
/// evaluation's scores and per-image table, through `say`.
public final class ConsoleReporter: TrainingCallback {
  private let say: (String) -> Void

  /// A reporter writing lines through `say`.
  public init(say: @escaping (String) -> Void) { self.say = say }

  public func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    guard let m = event.window else { return }
    let scaling = event.lossScaler.map { String(format: ", loss_scale %.0f, skipped_steps %ld", $0.scale, $0.skippedSteps) } ?? ""
    say(String(format: "step %ld: train_ce_loss %.4f, train_dice_loss %.4f, train_total_loss %.4f (means over the last %ld steps), %.2f img/s",
               event.step, m.crossEntropy, m.dice, m.total, m.steps, event.imagesPerSecond) + scaling)
  }

  public func evaluated(_ r: EvaluationReport, at step: Int) throws {
    say(String(format: "evaluation at step %ld on %ld images: eval_dice_score %.4f, eval_ce_loss %.4f, mean Dice %.4f, mean IoU %.4f",
               step, r.perImage.count, r.softDice, r.crossEntropy, r.meanDice, r.meanIoU))
    say(r.table())
  }
}
