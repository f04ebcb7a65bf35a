import CCUDA
import Foundation
import SegCore

// MARK: - The unique id

/// How the ranks of a job come to share one NCCL unique id: rank 0 makes it, and `broadcast` (an
/// MPI_Bcast in a run, a fake in tests) hands rank 0's bytes to every rank. Only rank 0 asks NCCL
/// for an id (it opens a listening socket for the others to join).
public enum NCCLUniqueID {
  /// The id's size in bytes (NCCL_UNIQUE_ID_BYTES).
  public static let bytes = Int(CCUDA_NCCL_UNIQUE_ID_BYTES)

  /// Rank 0's id on every rank: `make` runs on rank 0 only; `broadcast` gets rank 0's bytes (a
  /// buffer of `bytes` zeros on the others) and returns rank 0's.
  public static func agree(rank: Int, make: () throws -> [UInt8], broadcast: ([UInt8]) throws -> [UInt8]) throws -> [UInt8] {
    let own = rank == 0 ? try make() : [UInt8](repeating: 0, count: bytes)
    guard own.count == bytes else {
      throw CUDAError(.callFailed, "ncclGetUniqueId gave \(own.count) bytes; NCCL's unique id has \(bytes)")
    }
    let shared = try broadcast(own)
    guard shared.count == bytes, shared.contains(where: { $0 != 0 }) else {
      throw CUDAError(.callFailed, "rank \(rank) received \(shared.count) bytes of NCCL's unique id from rank 0, "
                        + "not the \(bytes) bytes rank 0 made")
    }
    return shared
  }
}

// MARK: - Summing buckets on the GPU

/// Sums f32 buckets of a CUDA backend's tensors over every rank of a job with NCCL (one
/// communicator per process, on its GPU), on a stream of its own: each sum waits, through an
/// event, for the work the backend's stream had queued when it started (the bucket's producers),
/// and `finish` makes the backend's stream wait for every sum, so the host never waits for the GPU.
public final class NCCLAllReduce: @unchecked Sendable {
  /// This process's rank and the number of ranks.
  public let rank, size: Int
  /// The backend whose tensors it sums.
  public let backend: CUDABackend
  /// NCCL's version code, e.g. 23203 for 2.32.3.
  public let version: Int
  private let api: NCCLAPI
  private let context: CUDAContext
  private let comm: ccuda_ncclComm
  private let stream: ccuda_CUstream
  private var events: [ccuda_CUevent] = []
  private var usedEvents = 0
  /// The buckets being summed: they live until the backend's stream has waited for the sums.
  private var inFlight: [Tensor] = []

  /// Joins the job's NCCL communicator on `backend`'s GPU: rank 0's unique id reaches every rank
  /// through `broadcast` (rank 0's bytes in, rank 0's bytes out), then every rank initialises its
  /// communicator (a collective: every rank must call this).
  public init(backend: CUDABackend, rank: Int, size: Int, broadcast: ([UInt8]) throws -> [UInt8]) throws {
    guard let gpu = backend.device as? GPUKernelDevice else {
      throw CUDAError(.unsupported, "NCCL sums tensors of a CUDA backend on a GPU; this one runs on \(backend.deviceDescription)")
    }
    let api = try NCCLAPI.load(gpu.context.driver.loader)
    (self.api, self.backend, self.rank, self.size, context) = (api, backend, rank, size, gpu.context)
    version = try api.version()
    let id = try NCCLUniqueID.agree(rank: rank, make: api.uniqueID, broadcast: broadcast)
    var unique = ccuda_ncclUniqueId()
    withUnsafeMutableBytes(of: &unique) { $0.copyBytes(from: id) }
    let driver = gpu.context.driver.api
    (comm, stream) = try gpu.context.current {
      var c: ccuda_ncclComm? = nil
      try api.check(api.ncclCommInitRank(&c, Int32(size), unique, Int32(rank)), "ncclCommInitRank (rank \(rank) of \(size))")
      var s: ccuda_CUstream? = nil
      try driver.check(driver.cuStreamCreate(&s, UInt32(CCUDA_STREAM_NON_BLOCKING)), "cuStreamCreate")
      guard let c, let s else { throw CUDAError(.callFailed, "ncclCommInitRank or cuStreamCreate returned no handle") }
      return (c, s)
    }
  }

  deinit {
    let driver = context.driver.api
    try? context.current {
      _ = driver.cuStreamSynchronize(stream)
      _ = api.ncclCommDestroy(comm)
      for e in events { _ = driver.cuEventDestroy(e) }
      _ = driver.cuStreamDestroy(stream)
    }
  }

  /// Whether tensors of `backend` are summed here (those of this CUDA backend; the host's go
  /// through MPI).
  public func reduces(_ backend: any Backend) -> Bool { backend === self.backend }

  /// Starts summing `bucket`, a 1-D f32 tensor of this backend, over every rank in place, after the
  /// work the backend's stream holds now.
  public func start(_ bucket: Tensor) throws {
    guard bucket.dtype == .f32, bucket.shape.rank == 1, let storage = bucket.node.storage as? CUDAStorage else {
      throw CUDAError(.unsupported, "NCCL sums 1-D f32 buckets of the CUDA backend, not \(bucket.type)")
    }
    let driver = context.driver.api
    try context.current {
      let produced = try event()
      try driver.check(driver.cuEventRecord(produced, context.stream), "cuEventRecord")
      try driver.check(driver.cuStreamWaitEvent(stream, produced, 0), "cuStreamWaitEvent")
      let address = UnsafeMutableRawPointer(bitPattern: UInt(storage.pointer))
      try api.check(api.ncclAllReduce(address, address, bucket.shape.count, CCUDA_NCCL_FLOAT32, CCUDA_NCCL_SUM, comm, stream),
                    "ncclAllReduce of \(bucket.shape.count) floats")
    }
    inFlight.append(bucket)
  }

  /// Makes the backend's stream wait for every started sum; the buckets then hold the sums.
  public func finish() throws {
    let driver = context.driver.api
    try context.current {
      let summed = try event()
      try driver.check(driver.cuEventRecord(summed, stream), "cuEventRecord")
      try driver.check(driver.cuStreamWaitEvent(context.stream, summed, 0), "cuStreamWaitEvent")
      var failure: ccuda_ncclResult = CCUDA_NCCL_SUCCESS
      try api.check(api.ncclCommGetAsyncError(comm, &failure), "ncclCommGetAsyncError")
      try api.check(failure, "ncclAllReduce (reported asynchronously)")
    }
    // The caching allocator reuses a freed block in the backend's stream order, which now waits
    // for the sums.
    (inFlight, usedEvents) = ([], 0)
  }

  /// An event for this step (made once, reused every step: recording one again replaces its work).
  private func event() throws -> ccuda_CUevent {
    if usedEvents == events.count {
      let driver = context.driver.api
      var e: ccuda_CUevent? = nil
      try driver.check(driver.cuEventCreate(&e, UInt32(CCUDA_EVENT_DISABLE_TIMING)), "cuEventCreate")
      guard let e else { throw CUDAError(.callFailed, "cuEventCreate returned no event") }
      events.append(e)
    }
    usedEvents += 1
    return events[usedEvents - 1]
  }
}
