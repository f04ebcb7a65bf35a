import Foundation

// MARK: - Prefetch queue

/// Numbered batches made by worker threads and taken in order by one consumer. A worker claims
/// the next number only while fewer than `capacity` batches are claimed and not yet taken, so at
/// most `capacity` batches exist ahead of the consumer. Finished batches wait in a dictionary by
/// number: whichever worker finishes first, the consumer sees them in order.
final class PrefetchQueue: @unchecked Sendable {
  private let condition = NSCondition()
  private let capacity: Int
  private var ready: [Int: HostBatch] = [:]
  private var nextToClaim: Int
  private var nextToTake: Int
  private var stopped = false
  private(set) var running: Int
  private(set) var highWater = 0

  init(first: Int, capacity: Int, workers: Int) {
    (nextToClaim, nextToTake, self.capacity, running) = (first, first, capacity, workers)
  }

  /// A worker's loop: claim a number, make its batch outside the lock, publish it; until stopped.
  func work(_ make: (Int) -> HostBatch) {
    condition.lock()
    while true {
      while !stopped && nextToClaim - nextToTake >= capacity { condition.wait() }
      if stopped { break }
      let index = nextToClaim
      nextToClaim += 1
      highWater = max(highWater, nextToClaim - nextToTake)
      condition.unlock()
      let batch = make(index)
      condition.lock()
      ready[index] = batch
      condition.broadcast()
    }
    running -= 1
    condition.broadcast()
    condition.unlock()
  }

  /// The next batch in order, waiting for it; nil once stopped.
  func take() -> HostBatch? {
    condition.lock()
    defer { condition.unlock() }
    while !stopped && ready[nextToTake] == nil { condition.wait() }
    if stopped { return nil }
    let batch = ready.removeValue(forKey: nextToTake)
    nextToTake += 1
    condition.broadcast()
    return batch
  }

  /// The next number, for a pipeline without workers that makes its batches itself.
  func takeIndex() -> Int {
    condition.lock()
    defer { condition.unlock() }
    nextToTake += 1
    return nextToTake - 1
  }

  /// Forgets `count` workers that never started, so that `stop()` does not wait for them.
  func abandon(_ count: Int) {
    condition.lock()
    running -= count
    condition.unlock()
  }

  /// Stops claiming, and returns once every worker has left its loop.
  func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    while running > 0 { condition.wait() }
    ready.removeAll()
    condition.unlock()
  }

  /// (running workers, batches made and waiting, the most batches ever claimed ahead).
  var counters: (running: Int, ready: Int, highWater: Int) {
    condition.lock()
    defer { condition.unlock() }
    return (running, ready.count, highWater)
  }
}

// MARK: - Monitor

/// A view of a pipeline's worker pool that outlives the pipeline: tests read it to see that the
/// queue stays bounded and that dropping the pipeline joins its threads.
public struct PipelineMonitor: Sendable {
  private let queue: PrefetchQueue
  init(_ queue: PrefetchQueue) { self.queue = queue }

  /// Worker threads still inside their loop.
  public var runningWorkers: Int { queue.counters.running }
  /// Batches made and not yet taken.
  public var readyBatches: Int { queue.counters.ready }
  /// The most batches that were ever claimed or made ahead of the consumer.
  public var mostAhead: Int { queue.counters.highWater }
}
