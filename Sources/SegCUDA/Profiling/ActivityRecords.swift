import CCUDA

// MARK: - Activity records

/// The CUPTI activity records the profiler reads, decoded from a record's bytes at the offsets
/// ccuda_cupti.h pins (checked against cupti_activity.h by the header test). Times are CUPTI's
/// nanosecond timestamps.
enum ActivityRecord: Equatable, Sendable {
  /// A kernel (CUpti_ActivityKernel13, kind CONCURRENT_KERNEL or KERNEL).
  case kernel(KernelRecord)
  /// A copy (CUpti_ActivityMemcpy7).
  case memcpy(CopyRecord)
  /// A fill (CUpti_ActivityMemset5).
  case memset(CopyRecord)
  /// Our op id `external` was on top of the thread's stack when CUPTI's call `correlation` was made.
  case external(kind: Int32, external: UInt64, correlation: UInt32)
  /// A driver or runtime API call on the host.
  case api(start: UInt64, end: UInt64, correlation: UInt32)
  /// A kind we did not enable (skipped).
  case other(kind: Int32)

  /// One kernel's run: its name, device times, the id of the launch call, stream, grid and block.
  struct KernelRecord: Equatable, Sendable {
    var name: String
    var start: UInt64
    var end: UInt64
    var correlation: UInt32
    var stream: UInt32
    var grid: [Int32]
    var block: [Int32]
  }

  /// One copy or fill: its direction (copies; CUpti_ActivityMemcpyKind), bytes, times, call id, stream.
  struct CopyRecord: Equatable, Sendable {
    var copyKind: UInt8
    var bytes: UInt64
    var start: UInt64
    var end: UInt64
    var correlation: UInt32
    var stream: UInt32
  }

  /// Decodes the record at `p` (aligned as CUPTI aligns records: 8 bytes).
  init(at p: UnsafeRawPointer) {
    func u64(_ at: Int32) -> UInt64 { p.load(fromByteOffset: Int(at), as: UInt64.self) }
    func u32(_ at: Int32) -> UInt32 { p.load(fromByteOffset: Int(at), as: UInt32.self) }
    func i32(_ at: Int32) -> Int32 { p.load(fromByteOffset: Int(at), as: Int32.self) }
    let kind = p.load(as: Int32.self)
    switch kind {
    case CCUDA_CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CCUDA_CUPTI_ACTIVITY_KIND_KERNEL:
      let name = p.load(fromByteOffset: Int(CCUDA_CUPTI_KERNEL_NAME), as: UnsafePointer<CChar>?.self)
      self = .kernel(
        KernelRecord(
          name: name.map { String(cString: $0) } ?? "(unnamed kernel)", start: u64(CCUDA_CUPTI_KERNEL_START),
          end: u64(CCUDA_CUPTI_KERNEL_END), correlation: u32(CCUDA_CUPTI_KERNEL_CORRELATION_ID),
          stream: u32(CCUDA_CUPTI_KERNEL_STREAM_ID),
          grid: [i32(CCUDA_CUPTI_KERNEL_GRID_X), i32(CCUDA_CUPTI_KERNEL_GRID_Y), i32(CCUDA_CUPTI_KERNEL_GRID_Z)],
          block: [i32(CCUDA_CUPTI_KERNEL_BLOCK_X), i32(CCUDA_CUPTI_KERNEL_BLOCK_Y), i32(CCUDA_CUPTI_KERNEL_BLOCK_Z)]))
    case CCUDA_CUPTI_ACTIVITY_KIND_MEMCPY:
      self = .memcpy(
        CopyRecord(
          copyKind: p.load(fromByteOffset: Int(CCUDA_CUPTI_MEMCPY_COPY_KIND), as: UInt8.self), bytes: u64(CCUDA_CUPTI_MEMCPY_BYTES),
          start: u64(CCUDA_CUPTI_MEMCPY_START), end: u64(CCUDA_CUPTI_MEMCPY_END),
          correlation: u32(CCUDA_CUPTI_MEMCPY_CORRELATION_ID), stream: u32(CCUDA_CUPTI_MEMCPY_STREAM_ID)))
    case CCUDA_CUPTI_ACTIVITY_KIND_MEMSET:
      self = .memset(
        CopyRecord(
          copyKind: 0, bytes: u64(CCUDA_CUPTI_MEMSET_BYTES), start: u64(CCUDA_CUPTI_MEMSET_START), end: u64(CCUDA_CUPTI_MEMSET_END),
          correlation: u32(CCUDA_CUPTI_MEMSET_CORRELATION_ID), stream: u32(CCUDA_CUPTI_MEMSET_STREAM_ID)))
    case CCUDA_CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION:
      self = .external(
        kind: i32(CCUDA_CUPTI_EXTERNAL_KIND), external: u64(CCUDA_CUPTI_EXTERNAL_ID), correlation: u32(CCUDA_CUPTI_EXTERNAL_CORRELATION_ID))
    case CCUDA_CUPTI_ACTIVITY_KIND_DRIVER, CCUDA_CUPTI_ACTIVITY_KIND_RUNTIME:
      self = .api(start: u64(CCUDA_CUPTI_API_START), end: u64(CCUDA_CUPTI_API_END), correlation: u32(CCUDA_CUPTI_API_CORRELATION_ID))
    default:
      self = .other(kind: kind)
    }
  }

  /// The size of each kind's record in CUDA 13 (its struct's sizeof), for buffers laid out record
  /// after record; nil for a kind we do not lay out.
  static func size(ofKind kind: Int32) -> Int? {
    switch kind {
    case CCUDA_CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CCUDA_CUPTI_ACTIVITY_KIND_KERNEL: return Int(CCUDA_CUPTI_KERNEL_SIZE)
    case CCUDA_CUPTI_ACTIVITY_KIND_MEMCPY: return Int(CCUDA_CUPTI_MEMCPY_SIZE)
    case CCUDA_CUPTI_ACTIVITY_KIND_MEMSET: return Int(CCUDA_CUPTI_MEMSET_SIZE)
    case CCUDA_CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: return Int(CCUDA_CUPTI_EXTERNAL_SIZE)
    case CCUDA_CUPTI_ACTIVITY_KIND_DRIVER, CCUDA_CUPTI_ACTIVITY_KIND_RUNTIME: return Int(CCUDA_CUPTI_API_SIZE)
    default: return nil
    }
  }
}

// MARK: - Walking a buffer

/// How the records of one completed buffer are found, one after another.
enum ActivityBufferWalk {
  /// CUPTI's own iterator (cuptiActivityGetNextRecord), for the buffers it fills.
  case cupti(CUPTIAPI)
  /// Records laid out back to back at their struct sizes (`ActivityRecord.size(ofKind:)`), as the
  /// tests lay out synthetic buffers.
  case packed

  /// Calls `body` with each record of the first `valid` bytes of `buffer`; an error names a record
  /// CUPTI could not read (the rest of the buffer is then skipped).
  func forEach(_ buffer: UnsafeMutablePointer<UInt8>, valid: Int, _ body: (ActivityRecord) -> Void) throws {
    switch self {
    case .cupti(let api):
      var record: UnsafeMutablePointer<ccuda_CUpti_Activity>? = nil
      while true {
        let status = api.cuptiActivityGetNextRecord(buffer, valid, &record)
        if status == CCUDA_CUPTI_ERROR_MAX_LIMIT_REACHED { return }
        try api.check(status, "cuptiActivityGetNextRecord")
        guard let record else { return }
        body(ActivityRecord(at: UnsafeRawPointer(record)))
      }
    case .packed:
      var offset = 0
      while offset + 4 <= valid {
        let p = UnsafeRawPointer(buffer + offset)
        let kind = p.load(as: Int32.self)
        guard let size = ActivityRecord.size(ofKind: kind), offset + size <= valid else {
          throw CUDAError(.callFailed, "activity buffer: a record of kind \(kind) at byte \(offset) of \(valid) has no known size")
        }
        body(ActivityRecord(at: p))
        offset += size
      }
    }
  }
}
