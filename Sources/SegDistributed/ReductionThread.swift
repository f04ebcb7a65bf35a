import Foundation

// MARK: - The communication thread

/// A thread of its own that runs the gradient buckets' all-reduces while the training thread goes
/// on with the backward pass. Open MPI moves a non-blocking collective on only inside MPI calls
/// (its builds have no progress thread), so a reduction started on the training thread advances
/// only at that thread's next MPI call; here one thread starts each queued bucket (MPI_Iallreduce)
/// and calls MPI_Test on the started ones until they are done, sleeping `poll` between tests so
/// that it leaves the core to the compute threads (a blocking MPI_Allreduce, or MPI_Wait, spins).
///
/// MPI_THREAD_SERIALIZED is enough: the training thread makes no MPI call between handing the
/// first bucket of a step over and `waitAll` returning, and this thread makes none outside that
/// window, so two threads never call MPI at once (the lock's hand-over orders their calls).
final class ReductionThread: @unchecked Sendable {
  /// The ranks reduced over.
  let communicator: Communicator
  /// Seconds slept between two MPI_Test rounds while a reduction is in flight.
  let poll: Double

  private struct Job {
    let buffer: UnsafeMutablePointer<Float>
    let count: Int
  }
  private let condition = NSCondition()
  // Guarded by `condition`.
  private var queue: [Job] = []
  private var submitted = 0, completed = 0
  private var failure: (any Error)?
  private var stopping = false
  private var secondsInMPI = 0.0
  private var leftovers: [UnsafeMutableBufferPointer<Float>] = []

  /// Starts the thread; it sleeps on a condition until a bucket arrives.
  init(communicator: Communicator, poll: Double = 0.0005) {
    self.communicator = communicator
    self.poll = poll
    // The thread holds the object until its loop ends (after `stop`).
    let thread = Thread { self.main() }
    thread.name = "unet-allreduce"
    thread.start()
  }

  /// Asks the thread to end once its queue is empty, deallocating `buffers` then.
  func stop(freeing buffers: [UnsafeMutableBufferPointer<Float>] = []) {
    condition.withLock {
      stopping = true
      leftovers = buffers
      condition.broadcast()
    }
  }

  /// Hands over `count` floats at `buffer` to be summed over every rank in place; the buffer must
  /// stay put and untouched until `waitAll` returns.
  func submit(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
    condition.withLock {
      queue.append(Job(buffer: buffer, count: count))
      submitted += 1
      condition.broadcast()
    }
  }

  /// Blocks until every submitted bucket is reduced; rethrows the first MPI error of the thread.
  /// Returns the seconds the thread spent in MPI calls since the last `waitAll`.
  func waitAll() throws -> Double {
    try condition.withLock {
      while completed < submitted && failure == nil { condition.wait() }
      if let failure { throw failure }
      defer { secondsInMPI = 0 }
      return secondsInMPI
    }
  }

  // MARK: - The thread's loop

  private func main() {
    let clock = ContinuousClock()
    var inFlight: [PendingReduction] = []
    while true {
      // Take every queued bucket, or sleep until one comes when nothing is in flight.
      var jobs: [Job] = []
      let stop: Bool = condition.withLock {
        while queue.isEmpty && inFlight.isEmpty && !stopping { condition.wait() }
        (jobs, queue) = (queue, [])
        return stopping && queue.isEmpty && inFlight.isEmpty && jobs.isEmpty
      }
      if stop {
        condition.withLock { for b in leftovers { b.deallocate() } }
        return
      }
      do {
        let t0 = clock.now
        for job in jobs { inFlight.append(try communicator.startAllreduce(job.buffer, count: job.count)) }
        for i in inFlight.indices { _ = try communicator.test(&inFlight[i]) }
        let spent = (clock.now - t0).seconds
        let finished = inFlight.prefix { $0.done }.count
        // Counted in the order they started, so that `completed` never counts one still running.
        inFlight.removeFirst(finished)
        condition.withLock {
          completed += finished
          secondsInMPI += spent
          if finished > 0 { condition.broadcast() }
        }
        if !inFlight.isEmpty { Thread.sleep(forTimeInterval: poll) }
      } catch {
        // MPI's default handler ends the job on most errors; one that returns ends this thread,
        // and the training thread rethrows it from `waitAll`.
        condition.withLock {
          failure = error
          condition.broadcast()
          while !stopping { condition.wait() }
          for b in leftovers { b.deallocate() }
        }
        return
      }
    }
  }
}
