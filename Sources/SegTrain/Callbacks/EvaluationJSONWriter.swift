import Foundation
import SegCore

// MARK: - Evaluation report file

/// Writes each evaluation's report as JSON (mean_dice, mean_iou, soft_dice, per_image, ...) to one
/// file, atomically, replacing the previous one: `unet evaluate --output`.
public final class EvaluationJSONWriter: TrainingCallback {
  /// The report's file.
  public let url: URL

  /// A writer to `url`.
  public init(url: URL) { self.url = url }

  public func evaluated(_ r: EvaluationReport, at step: Int) throws {
    do { try r.jsonData().write(to: url, options: .atomic) } catch {
      throw SettingError(.evaluationOutput, value: url.path, "cannot write the evaluation report: \(FileProblem.describe(error, path: url.path))")
    }
  }
}
