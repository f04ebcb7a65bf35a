import Foundation

// MARK: - Device description

/// A GPU as cuDNN's heuristics and plans see it: the JSON of a `CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR`
/// (SM count, shared memory, L2, compute capability as `deviceVer`...). From a real GPU it comes
/// from cuDNN itself (`current(ordinal:api:)`, dumped by `unet doctor --output`); given as JSON, it
/// lets plans for that GPU be built and finalized on a machine without one (cuDNN >= 9.11).
public struct CuDNNDeviceDescription: Sendable, Equatable {
  /// The JSON cuDNN reads and writes.
  public let json: String
  /// The device's name, e.g. "NVIDIA H200".
  public let deviceName: String
  /// The compute capability as cuDNN writes it: 900 for sm_90, 800 for sm_80.
  public let deviceVersion: Int

  /// A description from cuDNN's JSON; an error says what is missing.
  public init(json: String) throws {
    guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
      throw CUDAError(.invalidSetting, "a cuDNN device description must be a JSON object (as `unet doctor --output` writes it)")
    }
    guard let name = object["deviceName"] as? String, let version = (object["deviceVer"] as? NSNumber)?.intValue else {
      throw CUDAError(.invalidSetting, "the cuDNN device description has no deviceName or deviceVer")
    }
    self.json = json
    deviceName = name
    deviceVersion = version
  }

  /// "NVIDIA-H200-sm90": the device part of a plan cache's file name.
  public var cacheName: String { Self.cacheName(deviceName: deviceName, deviceVersion: deviceVersion) }

  /// The cache name of a device named `deviceName` of compute capability `deviceVersion` (900: sm_90).
  static func cacheName(deviceName: String, deviceVersion: Int) -> String {
    let safe = deviceName.map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined()
    return "\(safe)-sm\(deviceVersion / 10)"
  }

  /// The finalized DEVICEPROP descriptor of this description.
  func descriptor(_ api: CUDNNGraphAPI) throws -> BackendDescriptor {
    guard api.version >= CUDNNGraphAPI.deviceDescriptionMinimumVersion else {
      throw CUDAError(
        .unsupported,
        "cuDNN \(DoctorReport.libraryVersion(api.version)) cannot describe a device in JSON (cuDNN 9.11 or later can): "
          + "`pip install -U nvidia-cudnn-cu13`")
    }
    let d = try BackendDescriptor(.deviceProperties, api: api)
    try d.set(.deviceJSON, text: json)
    try d.finalize()
    return d
  }

  /// The description cuDNN makes of GPU `ordinal` (needs that GPU and its driver).
  public static func current(ordinal: Int, api: CUDNNGraphAPI) throws -> CuDNNDeviceDescription {
    let d = try BackendDescriptor(.deviceProperties, api: api)
    try d.set(.deviceID, enumValue: Int32(ordinal), type: BackendValueType.int32)
    try d.finalize()
    return try CuDNNDeviceDescription(json: try d.text(.deviceJSON))
  }
}
