import CMPI
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Symbol sources

/// Where the MPI table gets its addresses: the loaded libmpi, or (in tests) a recorder.
protocol MPISymbolSource {
  /// The address of the exported function or global `name`.
  func address(_ name: String) throws -> UnsafeMutableRawPointer
}

extension MPISymbolSource {
  /// The function `name` as the C function-pointer type `F`.
  func function<F>(_ name: String) throws -> F { unsafeBitCast(try address(name), to: F.self) }
}

// MARK: - The library

/// Open MPI's libmpi, opened with dlopen at run time (RTLD_GLOBAL: Open MPI's own plug-ins, which
/// it dlopens in MPI_Init, resolve libmpi's symbols through the global namespace).
final class MPILibrary: MPISymbolSource, @unchecked Sendable {
  /// The file names tried, in order: Open MPI 4 and 5, then the development link.
  static let sonames = ["libmpi.so.40", "libmpi.so"]
  /// The file it was found under.
  let soname: String
  private let handle: UnsafeMutableRawPointer

  /// Opens the first of `sonames` the dynamic loader finds, or only the file UNET_MPI_LIBRARY names.
  init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
    let names = environment["UNET_MPI_LIBRARY"].map { [$0] } ?? Self.sonames
    var reasons: [String] = []
    for name in names {
      if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
        (handle, soname) = (h, name)
        return
      }
      reasons.append(dlerror().map { String(cString: $0) } ?? name)
    }
    throw DistributedError.libraryMissing(reasons.joined(separator: "; "))
  }

  func address(_ name: String) throws -> UnsafeMutableRawPointer {
    guard let p = dlsym(handle, name) else {
      throw DistributedError.symbolMissing(name, library: soname)
    }
    return p
  }
}

// MARK: - The table

/// The MPI entry points and predefined handles the data-parallel training uses, resolved from
/// Open MPI's libmpi (whose handles are the addresses of its globals, e.g. MPI_COMM_WORLD is
/// &ompi_mpi_comm_world). The names of those globals are checked against mpi.h's macros in the tests.
struct MPIAPI: @unchecked Sendable {
  let initThread: cmpi_MPI_Init_thread_fn
  let initialized: cmpi_MPI_Initialized_fn
  let queryThread: cmpi_MPI_Query_thread_fn
  let finalized: cmpi_MPI_Finalized_fn
  let finalize: cmpi_MPI_Finalize_fn
  let abort: cmpi_MPI_Abort_fn
  let commRank: cmpi_MPI_Comm_rank_fn
  let commSize: cmpi_MPI_Comm_size_fn
  let commSplitType: cmpi_MPI_Comm_split_type_fn
  let commFree: cmpi_MPI_Comm_free_fn
  let allreduce: cmpi_MPI_Allreduce_fn
  let iallreduce: cmpi_MPI_Iallreduce_fn
  let bcast: cmpi_MPI_Bcast_fn
  let barrier: cmpi_MPI_Barrier_fn
  let ibarrier: cmpi_MPI_Ibarrier_fn
  let test: cmpi_MPI_Test_fn
  let wait: cmpi_MPI_Wait_fn
  let errorString: cmpi_MPI_Error_string_fn

  /// MPI_COMM_WORLD, MPI_INFO_NULL.
  let commWorld, infoNull: UnsafeMutableRawPointer
  /// MPI_FLOAT, MPI_DOUBLE, MPI_UINT64_T, MPI_BYTE.
  let float, double, uint64, byte: UnsafeMutableRawPointer
  /// MPI_SUM, MPI_MAX, MPI_MIN.
  let sum, max, min: UnsafeMutableRawPointer

  /// The functions our declarations name, as mpi.h spells them.
  static let functions = [
    "MPI_Init_thread", "MPI_Initialized", "MPI_Query_thread", "MPI_Finalized", "MPI_Finalize", "MPI_Abort", "MPI_Comm_rank", "MPI_Comm_size",
    "MPI_Comm_split_type", "MPI_Comm_free", "MPI_Allreduce", "MPI_Iallreduce", "MPI_Bcast", "MPI_Barrier", "MPI_Ibarrier", "MPI_Test",
    "MPI_Wait", "MPI_Error_string",
  ]
  /// Each predefined handle we use and the Open MPI global whose address it is.
  static let handles: [(macro: String, symbol: String)] = [
    ("MPI_COMM_WORLD", "ompi_mpi_comm_world"), ("MPI_INFO_NULL", "ompi_mpi_info_null"), ("MPI_FLOAT", "ompi_mpi_float"),
    ("MPI_DOUBLE", "ompi_mpi_double"), ("MPI_UINT64_T", "ompi_mpi_uint64_t"), ("MPI_BYTE", "ompi_mpi_byte"),
    ("MPI_SUM", "ompi_mpi_op_sum"), ("MPI_MAX", "ompi_mpi_op_max"), ("MPI_MIN", "ompi_mpi_op_min"),
  ]

  init(_ s: some MPISymbolSource) throws {
    initThread = try s.function("MPI_Init_thread")
    initialized = try s.function("MPI_Initialized")
    queryThread = try s.function("MPI_Query_thread")
    finalized = try s.function("MPI_Finalized")
    finalize = try s.function("MPI_Finalize")
    abort = try s.function("MPI_Abort")
    commRank = try s.function("MPI_Comm_rank")
    commSize = try s.function("MPI_Comm_size")
    commSplitType = try s.function("MPI_Comm_split_type")
    commFree = try s.function("MPI_Comm_free")
    allreduce = try s.function("MPI_Allreduce")
    iallreduce = try s.function("MPI_Iallreduce")
    bcast = try s.function("MPI_Bcast")
    barrier = try s.function("MPI_Barrier")
    ibarrier = try s.function("MPI_Ibarrier")
    test = try s.function("MPI_Test")
    wait = try s.function("MPI_Wait")
    errorString = try s.function("MPI_Error_string")
    var h: [String: UnsafeMutableRawPointer] = [:]
    for (_, symbol) in Self.handles { h[symbol] = try s.address(symbol) }
    (commWorld, infoNull) = (h["ompi_mpi_comm_world"]!, h["ompi_mpi_info_null"]!)
    (float, double, uint64, byte) = (h["ompi_mpi_float"]!, h["ompi_mpi_double"]!, h["ompi_mpi_uint64_t"]!, h["ompi_mpi_byte"]!)
    (sum, max, min) = (h["ompi_mpi_op_sum"]!, h["ompi_mpi_op_max"]!, h["ompi_mpi_op_min"]!)
  }

  /// Throws naming `call` and MPI's own message for `code` unless it is MPI_SUCCESS.
  func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
    guard code != CMPI_SUCCESS else { return }
    var buffer = [CChar](repeating: 0, count: 512)
    var length: Int32 = 0
    let message = errorString(code, &buffer, &length) == CMPI_SUCCESS ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "error \(code)"
    throw DistributedError.call(call(), code: Int(code), message: message)
  }
}
