import CMPI
import Foundation

// MARK: - Communicator

/// The processes of a data-parallel run, joined through MPI's world communicator: ranks, the
/// collectives the training needs (all-reduce, started ones too, broadcast, barrier) and the abort
/// that ends every process. Every call is made from one thread at a time (MPI_THREAD_SERIALIZED),
/// though not always the same one (`GradientReducer`'s communication thread makes some).
public final class Communicator: @unchecked Sendable {
  /// This process's rank, 0..<size.
  public let rank: Int
  /// The number of processes.
  public let size: Int
  /// This process's rank among those on its node (the GPU it takes).
  public let localRank: Int
  /// The ranks on this process's node (they share its memory).
  public let localSize: Int
  /// How the processes were started.
  public let launch: LaunchEnvironment
  /// Whether the library lets threads other than the one that initialised it call MPI, one at a
  /// time (it provides MPI_THREAD_SERIALIZED or more): what the communication thread needs.
  public let threadsMayCall: Bool
  let api: MPIAPI
  private var finished = false

  /// Initialises MPI from `library` for the processes `launch` started; throws when MPI sees
  /// another number of processes than the launcher says.
  init(api: MPIAPI, launch: LaunchEnvironment) throws {
    self.api = api
    self.launch = launch
    var flag: Int32 = 0
    try api.check(api.initialized(&flag), "MPI_Initialized")
    var provided: Int32 = 0
    if flag == 0 {
      try api.check(api.initThread(nil, nil, CMPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread")
    } else {
      try api.check(api.queryThread(&provided), "MPI_Query_thread")
    }
    threadsMayCall = provided >= CMPI_THREAD_SERIALIZED
    var r: Int32 = 0, n: Int32 = 0
    try api.check(api.commRank(api.commWorld, &r), "MPI_Comm_rank")
    try api.check(api.commSize(api.commWorld, &n), "MPI_Comm_size")
    (rank, size) = (Int(r), Int(n))
    // The ranks sharing this node's memory, in world order: this one's place among them.
    var node: cmpi_Comm? = nil
    try api.check(api.commSplitType(api.commWorld, CMPI_COMM_TYPE_SHARED, r, api.infoNull, &node), "MPI_Comm_split_type")
    var local: Int32 = 0, localCount: Int32 = 0
    try api.check(api.commRank(node, &local), "MPI_Comm_rank (node)")
    try api.check(api.commSize(node, &localCount), "MPI_Comm_size (node)")
    try api.check(api.commFree(&node), "MPI_Comm_free")
    (localRank, localSize) = (Int(local), Int(localCount))
    guard size == launch.size else {
      throw DistributedError.sizeMismatch(launcher: launch.launcher, expected: launch.size, actual: size)
    }
  }

  /// "rank 1 of 2", for messages.
  public var name: String { "rank \(rank) of \(size)" }
  /// Whether this is rank 0, the one that writes files and prints.
  public var isRoot: Bool { rank == 0 }

  // MARK: - Collectives

  /// Element-wise sum (or `op`) of `values` over every rank, in place; every rank gets the result.
  public func allreduce(_ values: inout [Float], _ op: ReduceOp = .sum) throws {
    let count = values.count
    try values.withUnsafeMutableBytes { try allreduce($0.baseAddress!, count: count, type: api.float, op) }
  }

  /// Element-wise sum (or `op`) of `values` over every rank, in place.
  public func allreduce(_ values: inout [Double], _ op: ReduceOp = .sum) throws {
    let count = values.count
    try values.withUnsafeMutableBytes { try allreduce($0.baseAddress!, count: count, type: api.double, op) }
  }

  /// Element-wise `op` of `values` over every rank, in place.
  public func allreduce(_ values: inout [UInt64], _ op: ReduceOp) throws {
    let count = values.count
    try values.withUnsafeMutableBytes { try allreduce($0.baseAddress!, count: count, type: api.uint64, op) }
  }

  private func allreduce(_ buffer: UnsafeMutableRawPointer, count: Int, type: UnsafeMutableRawPointer, _ op: ReduceOp) throws {
    guard count > 0 else { return }
    try api.check(api.allreduce(Self.inPlace, buffer, Int32(count), type, handle(op), api.commWorld), "MPI_Allreduce")
  }

  /// Starts summing `count` floats at `buffer` over every rank, in place; the buffer must stay
  /// put until `wait` (or a `test` that returns true) says the sum is there.
  public func startAllreduce(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingReduction {
    var request: cmpi_Request? = nil
    try api.check(api.iallreduce(Self.inPlace, buffer, Int32(count), api.float, api.sum, api.commWorld, &request), "MPI_Iallreduce")
    return PendingReduction(request: request)
  }

  /// Whether `reduction` is done, letting MPI make progress on it.
  public func test(_ reduction: inout PendingReduction) throws -> Bool {
    if reduction.done { return true }
    var flag: Int32 = 0
    try api.check(api.test(&reduction.request, &flag, nil), "MPI_Test")
    reduction.done = flag != 0
    return reduction.done
  }

  /// Waits until `reduction` is done.
  public func wait(_ reduction: inout PendingReduction) throws {
    if reduction.done { return }
    try api.check(api.wait(&reduction.request, nil), "MPI_Wait")
    reduction.done = true
  }

  /// Rank `root`'s `values` on every rank (the count must be the same on all).
  public func broadcast(_ values: inout [Float], root: Int = 0) throws {
    guard !values.isEmpty else { return }
    let count = values.count
    try values.withUnsafeMutableBytes {
      try api.check(api.bcast($0.baseAddress!, Int32(count), api.float, Int32(root), api.commWorld), "MPI_Bcast")
    }
  }

  /// Rank `root`'s `values` on every rank.
  public func broadcast(_ values: inout [Double], root: Int = 0) throws {
    guard !values.isEmpty else { return }
    let count = values.count
    try values.withUnsafeMutableBytes {
      try api.check(api.bcast($0.baseAddress!, Int32(count), api.double, Int32(root), api.commWorld), "MPI_Bcast")
    }
  }

  /// Rank `root`'s `bytes` on every rank (the count must be the same on all).
  public func broadcast(_ bytes: inout [UInt8], root: Int = 0) throws {
    guard !bytes.isEmpty else { return }
    let count = bytes.count
    try bytes.withUnsafeMutableBytes {
      try api.check(api.bcast($0.baseAddress!, Int32(count), api.byte, Int32(root), api.commWorld), "MPI_Bcast")
    }
  }

  /// Returns once every rank has called it.
  public func barrier() throws { try api.check(api.barrier(api.commWorld), "MPI_Barrier") }

  /// Returns once every rank has called it, sleeping between polls rather than spinning, so that a
  /// rank waiting here leaves its core to the others (MPI's own waits spin).
  public func idleBarrier(poll: Duration = .milliseconds(10)) throws {
    var request: cmpi_Request? = nil
    try api.check(api.ibarrier(api.commWorld, &request), "MPI_Ibarrier")
    var flag: Int32 = 0
    while true {
      try api.check(api.test(&request, &flag, nil), "MPI_Test")
      if flag != 0 { return }
      Thread.sleep(forTimeInterval: Double(poll.components.attoseconds) * 1e-18 + Double(poll.components.seconds))
    }
  }

  // MARK: - Ending

  /// Ends every process of the job with `code` (MPI_Abort): what a failing rank does after printing
  /// its error, so that no other rank waits for it forever.
  public func abort(code: Int32) -> Never {
    _ = api.abort(api.commWorld, code)
    exit(code)
  }

  /// Leaves MPI after a run that ended well on every rank (the launcher reports a rank that exits
  /// without it as failed).
  public func finalize() throws {
    guard !finished else { return }
    finished = true
    try api.check(api.finalize(), "MPI_Finalize")
  }

  // MARK: - Handles

  /// MPI_IN_PLACE, Open MPI's ((void *) 1).
  static var inPlace: UnsafeRawPointer { UnsafeRawPointer(bitPattern: 1)! }

  private func handle(_ op: ReduceOp) -> UnsafeMutableRawPointer {
    switch op {
    case .sum: return api.sum
    case .max: return api.max
    case .min: return api.min
    }
  }
}

/// A reduction of `Communicator.allreduce`.
public enum ReduceOp: Sendable { case sum, max, min }

/// An all-reduce started by `Communicator.startAllreduce`, not yet known to be done.
public struct PendingReduction {
  var request: cmpi_Request?
  var done = false
}
