import CCUDA

// MARK: - Names

/// A descriptor type of cuDNN's backend API, with its name for messages.
struct BackendDescriptorType: Sendable {
  let value: ccuda_cudnnBackendDescriptorType
  let name: String

  static let pointwise = Self(value: CCUDA_CUDNN_DESCRIPTOR_POINTWISE, name: "POINTWISE")
  static let convolution = Self(value: CCUDA_CUDNN_DESCRIPTOR_CONVOLUTION, name: "CONVOLUTION")
  static let engine = Self(value: CCUDA_CUDNN_DESCRIPTOR_ENGINE, name: "ENGINE")
  static let engineConfig = Self(value: CCUDA_CUDNN_DESCRIPTOR_ENGINECFG, name: "ENGINECFG")
  static let engineHeuristics = Self(value: CCUDA_CUDNN_DESCRIPTOR_ENGINEHEUR, name: "ENGINEHEUR")
  static let executionPlan = Self(value: CCUDA_CUDNN_DESCRIPTOR_EXECUTION_PLAN, name: "EXECUTION_PLAN")
  static let convolutionForward = Self(value: CCUDA_CUDNN_DESCRIPTOR_OPERATION_CONVOLUTION_FORWARD, name: "OPERATION_CONVOLUTION_FORWARD")
  static let convolutionBackwardData = Self(
    value: CCUDA_CUDNN_DESCRIPTOR_OPERATION_CONVOLUTION_BACKWARD_DATA, name: "OPERATION_CONVOLUTION_BACKWARD_DATA")
  static let convolutionBackwardFilter = Self(
    value: CCUDA_CUDNN_DESCRIPTOR_OPERATION_CONVOLUTION_BACKWARD_FILTER, name: "OPERATION_CONVOLUTION_BACKWARD_FILTER")
  static let pointwiseOperation = Self(value: CCUDA_CUDNN_DESCRIPTOR_OPERATION_POINTWISE, name: "OPERATION_POINTWISE")
  static let operationGraph = Self(value: CCUDA_CUDNN_DESCRIPTOR_OPERATIONGRAPH, name: "OPERATIONGRAPH")
  static let variantPack = Self(value: CCUDA_CUDNN_DESCRIPTOR_VARIANT_PACK, name: "VARIANT_PACK")
  static let tensor = Self(value: CCUDA_CUDNN_DESCRIPTOR_TENSOR, name: "TENSOR")
  static let deviceProperties = Self(value: CCUDA_CUDNN_DESCRIPTOR_DEVICEPROP, name: "DEVICEPROP")
}

/// An attribute of a backend descriptor, with its name (as in cudnn_graph.h) for messages.
struct BackendAttribute: Sendable {
  let value: ccuda_cudnnBackendAttributeName
  let name: String
  init(_ name: String, _ value: ccuda_cudnnBackendAttributeName) {
    self.name = "CUDNN_ATTR_" + name
    self.value = value
  }
}

/// The element type of an attribute's values.
enum BackendValueType {
  static let handle = CCUDA_CUDNN_TYPE_HANDLE
  static let dataType = CCUDA_CUDNN_TYPE_DATA_TYPE
  static let boolean = CCUDA_CUDNN_TYPE_BOOLEAN
  static let int64 = CCUDA_CUDNN_TYPE_INT64
  static let float = CCUDA_CUDNN_TYPE_FLOAT
  static let pointer = CCUDA_CUDNN_TYPE_VOID_PTR
  static let convolutionMode = CCUDA_CUDNN_TYPE_CONVOLUTION_MODE
  static let heuristicsMode = CCUDA_CUDNN_TYPE_HEUR_MODE
  static let numericalNote = CCUDA_CUDNN_TYPE_NUMERICAL_NOTE
  static let pointwiseMode = CCUDA_CUDNN_TYPE_POINTWISE_MODE
  static let descriptor = CCUDA_CUDNN_TYPE_BACKEND_DESCRIPTOR
  static let int32 = CCUDA_CUDNN_TYPE_INT32
  static let char = CCUDA_CUDNN_TYPE_CHAR
}

// MARK: - Descriptor

/// One backend descriptor, destroyed with this object. Descriptors set as attributes are kept
/// alive by the one that refers to them. Every failure names the call, the descriptor type, the
/// attribute and cuDNN's status and message.
final class BackendDescriptor: @unchecked Sendable {
  let api: CUDNNGraphAPI
  let type: BackendDescriptorType
  let pointer: ccuda_cudnnBackendDescriptor
  private var retained: [BackendDescriptor] = []

  /// A new descriptor of `type`.
  init(_ type: BackendDescriptorType, api: CUDNNGraphAPI) throws {
    self.api = api
    self.type = type
    var d: ccuda_cudnnBackendDescriptor? = nil
    try api.base.check(api.cudnnBackendCreateDescriptor(type.value, &d), "cudnnBackendCreateDescriptor(\(type.name))")
    guard let d else { throw CUDAError(.callFailed, "cudnnBackendCreateDescriptor(\(type.name)) returned no descriptor") }
    pointer = d
  }

  deinit { _ = api.cudnnBackendDestroyDescriptor(pointer) }

  // MARK: Setting

  private func set(_ a: BackendAttribute, _ type: ccuda_cudnnBackendAttributeType, _ count: Int, _ p: UnsafeRawPointer) throws {
    try api.base.check(
      api.cudnnBackendSetAttribute(pointer, a.value, type, Int64(count), p),
      "cudnnBackendSetAttribute(\(a.name) on \(self.type.name))")
  }

  /// Sets 64-bit integers (dimensions, strides, paddings, ids).
  func set(_ a: BackendAttribute, int64 values: [Int]) throws {
    let v = values.map(Int64.init)
    try v.withUnsafeBytes { try set(a, BackendValueType.int64, v.count, $0.baseAddress!) }
  }

  /// Sets one value of an int-sized enum type (a data type, a mode).
  func set(_ a: BackendAttribute, enumValue: Int32, type: ccuda_cudnnBackendAttributeType) throws {
    var v = enumValue
    try set(a, type, 1, &v)
  }

  /// Sets a boolean.
  func set(_ a: BackendAttribute, bool: Bool) throws {
    var v = bool
    try set(a, BackendValueType.boolean, 1, &v)
  }

  /// Sets a float scalar (alpha, beta of an f32-compute operation).
  func set(_ a: BackendAttribute, float: Float) throws {
    var v = float
    try set(a, BackendValueType.float, 1, &v)
  }

  /// Sets descriptors, which this one then keeps alive.
  func set(_ a: BackendAttribute, descriptors: [BackendDescriptor]) throws {
    var ps: [ccuda_cudnnBackendDescriptor?] = descriptors.map(\.pointer)
    try set(a, BackendValueType.descriptor, ps.count, &ps)
    retained += descriptors
  }

  /// Sets a string (a JSON representation), without its NUL.
  func set(_ a: BackendAttribute, text: String) throws {
    var bytes = Array(text.utf8CString.dropLast())
    try set(a, BackendValueType.char, bytes.count, &bytes)
  }

  /// Sets a cuDNN handle.
  func set(_ a: BackendAttribute, handle: ccuda_cudnnHandle) throws {
    var h: ccuda_cudnnHandle? = handle
    try set(a, BackendValueType.handle, 1, &h)
  }

  /// Sets device pointers (a variant pack's data and workspace).
  func set(_ a: BackendAttribute, pointers: [UnsafeMutableRawPointer?]) throws {
    var ps = pointers
    try set(a, BackendValueType.pointer, ps.count, &ps)
  }

  // MARK: Finalizing

  /// Finalizes the descriptor; throws with cuDNN's reason.
  func finalize() throws {
    try api.base.check(api.cudnnBackendFinalize(pointer), "cudnnBackendFinalize(\(type.name))")
  }

  /// Finalizes the descriptor and returns cuDNN's status (for plans, where "not supported" is an
  /// answer, not an error).
  func finalizeStatus() -> ccuda_cudnnStatus { api.cudnnBackendFinalize(pointer) }

  // MARK: Reading

  private func count(_ a: BackendAttribute, _ type: ccuda_cudnnBackendAttributeType) throws -> Int {
    var n: Int64 = 0
    try api.base.check(
      api.cudnnBackendGetAttribute(pointer, a.value, type, 0, &n, nil), "cudnnBackendGetAttribute(\(a.name) of \(self.type.name))")
    return Int(n)
  }

  /// Reads one 64-bit integer.
  func int64(_ a: BackendAttribute) throws -> Int {
    var n: Int64 = 0, v: Int64 = 0
    try api.base.check(
      api.cudnnBackendGetAttribute(pointer, a.value, BackendValueType.int64, 1, &n, &v),
      "cudnnBackendGetAttribute(\(a.name) of \(type.name))")
    return Int(v)
  }

  /// Reads int-sized enum values (numerical notes).
  func enumValues(_ a: BackendAttribute, type: ccuda_cudnnBackendAttributeType, capacity: Int = 16) throws -> [Int32] {
    var n: Int64 = 0
    var v = [Int32](repeating: -1, count: capacity)
    try api.base.check(
      api.cudnnBackendGetAttribute(pointer, a.value, type, Int64(capacity), &n, &v),
      "cudnnBackendGetAttribute(\(a.name) of \(self.type.name))")
    return Array(v.prefix(Int(n)))
  }

  /// Reads a string (a JSON representation).
  func text(_ a: BackendAttribute) throws -> String {
    let n = try count(a, BackendValueType.char)
    var bytes = [CChar](repeating: 0, count: n + 1)
    var got: Int64 = 0
    try api.base.check(
      api.cudnnBackendGetAttribute(pointer, a.value, BackendValueType.char, Int64(n), &got, &bytes),
      "cudnnBackendGetAttribute(\(a.name) of \(type.name))")
    return String(decoding: bytes.prefix(Int(got)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Reads descriptors of `type` (cuDNN fills descriptors the caller has created).
  func descriptors(_ a: BackendAttribute, of type: BackendDescriptorType) throws -> [BackendDescriptor] {
    let n = try count(a, BackendValueType.descriptor)
    guard n > 0 else { return [] }
    let made = try (0..<n).map { _ in try BackendDescriptor(type, api: api) }
    var ps: [ccuda_cudnnBackendDescriptor?] = made.map(\.pointer)
    var got: Int64 = 0
    try api.base.check(
      api.cudnnBackendGetAttribute(pointer, a.value, BackendValueType.descriptor, Int64(n), &got, &ps),
      "cudnnBackendGetAttribute(\(a.name) of \(self.type.name))")
    return Array(made.prefix(Int(got)))
  }
}
