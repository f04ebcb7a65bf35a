import Foundation
import SegCore
import SegData
import SegNN
import SegTestSupport
import SegTrain
import Testing

// MARK: - Callbacks

/// Writes what it is told, under its name, into a shared list.
final class Recorder: TrainingCallback {
  let name: String
  let box: Box
  final class Box { var lines: [String] = []; var events: [StepEvent] = [] }

  init(_ name: String, _ box: Box) { (self.name, self.box) = (name, box) }

  func scope<T>(_ body: () throws -> T) throws -> T {
    box.lines.append("\(name) enter")
    defer { box.lines.append("\(name) exit") }
    return try body()
  }
  func runStarted(_ run: RunContext) throws { box.lines.append("\(name) run \(run.validation.count)") }
  func trainingStarted(_ loop: TrainingLoop) throws { box.lines.append("\(name) training \(loop.firstStep)") }
  func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    box.lines.append("\(name) step \(event.step)" + (event.window.map { " window \($0.steps)" } ?? ""))
    if name == "a" { box.events.append(event) }
  }
  func evaluated(_ report: EvaluationReport, at step: Int) throws { box.lines.append("\(name) evaluated \(step)") }
  func trainingEnded(_ loop: TrainingLoop) throws { box.lines.append("\(name) trained \(loop.optimizer.step)") }
  func runEnded() throws { box.lines.append("\(name) end") }
}

/// The step of the checkpoint on disk when each update ends (nil: none yet).
final class CheckpointProbe: TrainingCallback {
  let url: URL
  var seen: [Int?] = []
  init(_ url: URL) { self.url = url }
  func stepEnded(_ event: StepEvent, in loop: TrainingLoop) throws {
    seen.append(FileManager.default.fileExists(atPath: url.path) ? try Checkpoint.load(from: url).step : nil)
  }
}

@Suite struct TrainingLoopTests {
  @Test func callbacksHearEveryUpdateInOrderWithTheLogWindows() throws {
    let config = LossScaledTrainingTests.config()
    var batching = PipelineOptions()
    (batching.batchSize, batching.seed, batching.workers) = (1, 5, 0)
    let pipeline = try TrainingPipeline(slices: SyntheticEM.generate(count: 2, size: 16, seed: 3), config: config, options: batching)
    var options = TrainingOptions()
    (options.maxSteps, options.logEvery, options.learningRate) = (5, 2, 1e-2)
    let box = Recorder.Box()
    let model = try UNet(config: config, seed: 1, on: ReferenceBackend.shared)
    let loop = TrainingLoop(
      model: model, optimizer: Adam(learningRate: 1e-2), options: options, precision: .fp32, batches: pipeline,
      on: ReferenceBackend.shared, callbacks: TrainingCallbacks([Recorder("a", box), Recorder("b", box)]))
    try loop.run()
    #expect(box.lines == [
      "a training 0", "b training 0", "a step 1", "b step 1", "a step 2 window 2", "b step 2 window 2", "a step 3", "b step 3",
      "a step 4 window 2", "b step 4 window 2", "a step 5 window 1", "b step 5 window 1", "a trained 5", "b trained 5",
    ])
    // A window holds the means of the updates since the last one.
    let e = box.events
    #expect(abs(e[1].window!.total - (e[0].metrics.total + e[1].metrics.total) / 2) < 1e-12)
    #expect(e[4].window!.total == e[4].metrics.total && e.allSatisfy { $0.lossScaler == nil && $0.maxSteps == 5 })
  }

  @Test func anFP16PolicyScalesTheLoss() throws {
    var batching = PipelineOptions()
    batching.workers = 0
    let config = LossScaledTrainingTests.config()
    let pipeline = try TrainingPipeline(slices: SyntheticEM.generate(count: 1, size: 16, seed: 3), config: config, options: batching)
    let model = try UNet(config: config, seed: 1, on: ReferenceBackend.shared)
    let policy = PrecisionPolicy(.fp16, on: ReferenceBackend.shared)
    let state = LossScaler.State(scale: 1024, goodSteps: 3, skippedSteps: 1)
    let loop = TrainingLoop(
      model: model, optimizer: Adam(learningRate: 1e-3), options: TrainingOptions(), precision: policy, lossScale: state,
      batches: pipeline, on: ReferenceBackend.shared, callbacks: TrainingCallbacks([]))
    #expect(loop.trainer.lossScaler?.state == state && model.computeType == policy.computeType)
  }

  @Test func theRunnerTellsItsCallbacksOfEveryEvaluationAndScopesTheWholeRun() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    var s = LossScaleCheckpointTests.settings(dir, steps: 4, precision: .fp32)
    (s.mode, s.evaluateEvery, s.syntheticSlices, s.fold, s.folds) = (.trainAndEvaluate, 2, 4, 0, 2)
    let box = Recorder.Box()
    let probe = CheckpointProbe(s.checkpointURL!)
    let runner = Runner(
      settings: s, backend: ReferenceBackend.shared, precision: .fp32, say: { _ in },
      callbacks: [Recorder("a", box), Recorder("b", box), probe])
    let report = try runner.run()
    #expect(box.lines.first == "a enter" && box.lines[1] == "b enter")
    #expect(box.lines.filter { $0.hasPrefix("a ") && !$0.hasPrefix("a step") } == [
      "a enter", "a run 2", "a training 0", "a evaluated 2", "a trained 4", "a evaluated 4", "a exit", "a end",
    ])
    #expect(box.lines.suffix(4) == ["b exit", "a exit", "a end", "b end"])
    #expect(report?.perImage.count == 2)
    // Saved after the evaluation at step 2 (seen from step 3 on), and at the end.
    #expect(probe.seen == [nil, nil, 2, 2])
    #expect(try Checkpoint.load(from: s.checkpointURL!).step == 4)
  }
}
