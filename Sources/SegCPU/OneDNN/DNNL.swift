import CDNNL
import Foundation
import SegCore

// MARK: - Errors

/// A oneDNN call that did not succeed: the call's name and the status it returned.
struct DNNLFailure: Error, CustomStringConvertible {
  let call: String
  let status: dnnl_status_t
  var description: String { "oneDNN \(call) returned \(statusName(status))" }
}

/// Throws a DNNLFailure naming `call` unless `status` is dnnl_success.
@inline(__always) func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
  if status != dnnl_success { throw DNNLFailure(call: call(), status: status) }
}

/// The status's name as the C header spells it.
func statusName(_ s: dnnl_status_t) -> String {
  switch s {
  case dnnl_success: return "dnnl_success"
  case dnnl_out_of_memory: return "dnnl_out_of_memory (the tensors do not fit in memory)"
  case dnnl_invalid_arguments: return "dnnl_invalid_arguments"
  case dnnl_unimplemented: return "dnnl_unimplemented (no implementation for these shapes or layouts)"
  case dnnl_iterator_ends: return "dnnl_iterator_ends"
  case dnnl_runtime_error: return "dnnl_runtime_error"
  case dnnl_not_required: return "dnnl_not_required"
  default: return "status \(s.rawValue)"
  }
}

// MARK: - Engine and stream

/// The CPU engine and the one stream every primitive runs on. oneDNN work is serialised by
/// `lock` (recursive): the stream is shared, and oneDNN already spreads each primitive over
/// every core with OpenMP.
final class DNNLContext: @unchecked Sendable {
  let engine: dnnl_engine_t
  let stream: dnnl_stream_t

  /// Guards every oneDNN call, the primitive cache and the layout caches of CPU storages.
  static let lock = NSRecursiveLock()

  private static let made: Result<DNNLContext, Error> = Result { try DNNLContext() }

  /// The shared context, or the error that prevented making it.
  static func get() throws -> DNNLContext { try made.get() }

  private init() throws {
    var e: dnnl_engine_t?
    try check(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
    var s: dnnl_stream_t?
    try check(dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
    engine = e!
    stream = s!
  }

  /// Runs `body` holding the oneDNN lock.
  static func locked<T>(_ body: () throws -> T) rethrows -> T {
    lock.lock()
    defer { lock.unlock() }
    return try body()
  }
}

// MARK: - Primitives

/// A primitive descriptor and its primitive, destroyed together. Keeps the forward descriptor a
/// backward one was made with, and its own scratchpad: oneDNN's library-managed scratchpad
/// belongs to the thread that made the primitive, so a cached primitive run from another thread
/// would write through a null scratchpad (seen in convolution backward-filter).
final class DNNLPrimitive {
  let pd: dnnl_primitive_desc_t
  let primitive: dnnl_primitive_t
  private let hint: DNNLPrimitive?
  /// The primitive's scratchpad; one suffices because executions are serialised by the lock.
  private let scratchpad: DNNLMemory?

  /// Makes the descriptor for `opDesc` (a oneDNN op descriptor struct, with `attr`'s post-ops)
  /// and its primitive, with a scratchpad of its own.
  convenience init<Desc>(
    _ name: String, opDesc: inout Desc, attr: dnnl_primitive_attr_t? = nil, hint: DNNLPrimitive? = nil
  ) throws {
    let ctx = try DNNLContext.get()
    var own: dnnl_primitive_attr_t? = nil
    if attr == nil { try check(dnnl_primitive_attr_create(&own), "dnnl_primitive_attr_create") }
    defer { if let own { dnnl_primitive_attr_destroy(own) } }
    let attributes = attr ?? own
    try check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode")
    var pd: dnnl_primitive_desc_t?
    let status = withUnsafeMutablePointer(to: &opDesc) {
      dnnl_primitive_desc_create(&pd, UnsafeRawPointer($0), attributes, ctx.engine, hint?.pd)
    }
    try check(status, "dnnl_primitive_desc_create (\(name))")
    try self.init(name, pd: pd!, hint: hint)
  }

  /// Takes ownership of `pd` and makes its primitive (and the scratchpad it asks for, when its
  /// attributes put the scratchpad in the user's hands).
  init(_ name: String, pd: dnnl_primitive_desc_t, hint: DNNLPrimitive? = nil) throws {
    var p: dnnl_primitive_t?
    let status = dnnl_primitive_create(&p, pd)
    guard status == dnnl_success, let p else {
      dnnl_primitive_desc_destroy(pd)
      throw DNNLFailure(call: "dnnl_primitive_create (\(name))", status: status)
    }
    self.pd = pd
    self.primitive = p
    self.hint = hint
    if let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), dnnl_memory_desc_get_size(md) > 0 {
      scratchpad = try DNNLMemory(Layout(md.pointee))
    } else {
      scratchpad = nil
    }
  }

  deinit {
    dnnl_primitive_destroy(primitive)
    dnnl_primitive_desc_destroy(pd)
  }

  /// The layout the descriptor chose for one of its memories (e.g. dnnl_query_src_md).
  func layout(_ what: dnnl_query_t, _ index: Int32 = 0) throws -> Layout {
    guard let md = dnnl_primitive_desc_query_md(pd, what, index) else {
      throw DNNLFailure(call: "dnnl_primitive_desc_query_md(\(what.rawValue))", status: dnnl_invalid_arguments)
    }
    return Layout(md.pointee)
  }

  /// Runs the primitive on (argument index, memory) pairs and waits for it.
  func execute(_ args: [(Int32, DNNLMemory)], _ name: String) throws {
    let ctx = try DNNLContext.get()
    let args = args + (scratchpad.map { [(DNNL_ARG_SCRATCHPAD, $0)] } ?? [])
    var cArgs = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
    try withExtendedLifetime(args) {
      DNNLContext.lock.lock()
      defer { DNNLContext.lock.unlock() }
      try check(dnnl_primitive_execute(primitive, ctx.stream, Int32(cArgs.count), &cArgs), "dnnl_primitive_execute (\(name))")
      try check(dnnl_stream_wait(ctx.stream), "dnnl_stream_wait (\(name))")
    }
  }
}

// MARK: - Primitive cache

/// What a cached primitive was made for: the op and its attributes, shapes and input layouts.
struct PrimitiveKey: Hashable {
  let op: String
  let values: [Int64]
  init(_ op: String, _ values: [Int]) {
    self.op = op
    self.values = values.map(Int64.init)
  }
  init(_ op: String, _ values: [Int], layouts: [Layout]) {
    self.op = op
    self.values = values.map(Int64.init) + layouts.flatMap { [-1] + $0.fields }
  }
}

/// Primitives by key, made once (making a convolution descriptor costs far more than a small run).
enum PrimitiveCache {
  nonisolated(unsafe) private static var entries: [PrimitiveKey: DNNLPrimitive] = [:]
  /// Enough for every layer of a deep U-Net in both directions and a few tile sizes.
  private static let capacity = 2048

  /// The cached primitive for `key`, or the one `make` builds (then cached).
  static func get(_ key: PrimitiveKey, _ make: () throws -> DNNLPrimitive) throws -> DNNLPrimitive {
    try DNNLContext.locked {
      if let p = entries[key] { return p }
      let p = try make()
      if entries.count >= capacity { entries.removeAll() }
      entries[key] = p
      return p
    }
  }
}

// MARK: - Reorder

/// Copies `src` into `dst`, converting between their layouts (same logical dims).
func reorder(_ src: DNNLMemory, into dst: DNNLMemory) throws {
  let key = PrimitiveKey("reorder", [], layouts: [src.layout, dst.layout])
  let p = try PrimitiveCache.get(key) {
    let ctx = try DNNLContext.get()
    var pd: dnnl_primitive_desc_t?
    try withUnsafePointer(to: src.layout.md) { s in
      try withUnsafePointer(to: dst.layout.md) { d in
        try check(dnnl_reorder_primitive_desc_create(&pd, s, ctx.engine, d, ctx.engine, nil), "dnnl_reorder_primitive_desc_create")
      }
    }
    return try DNNLPrimitive("reorder", pd: pd!)
  }
  try p.execute([(DNNL_ARG_FROM, src), (DNNL_ARG_TO, dst)], "reorder")
}

// MARK: - Attributes

/// Primitive attributes with a ReLU post-op (nil when `relu` is false); the caller destroys them.
func reluPostOpAttr(_ relu: Bool) throws -> dnnl_primitive_attr_t? {
  guard relu else { return nil }
  var attr: dnnl_primitive_attr_t?
  try check(dnnl_primitive_attr_create(&attr), "dnnl_primitive_attr_create")
  var ops: dnnl_post_ops_t?
  do {
    try check(dnnl_post_ops_create(&ops), "dnnl_post_ops_create")
    defer { dnnl_post_ops_destroy(ops) }
    try check(dnnl_post_ops_append_eltwise(ops, 1, dnnl_eltwise_relu, 0, 0), "dnnl_post_ops_append_eltwise")
    try check(dnnl_primitive_attr_set_post_ops(attr, ops), "dnnl_primitive_attr_set_post_ops")
  } catch {
    dnnl_primitive_attr_destroy(attr)
    throw error
  }
  return attr
}
