import Foundation
import SegCore

// MARK: - Capturing a replay

/// The CUDA backend captures a compiled program's replay as one CUDA graph (`ProgramCapture`):
/// on a GPU through stream capture, on a recording device as a list of its requests.
extension CUDABackend: GraphCapturingBackend {
  /// True on a GPU and on a recording device; UNET_CUDA_GRAPHS=0 turns captures off.
  public var capturesGraphs: Bool {
    guard !ProcessEnvironment.graphsOff else { return false }
    return device is GPUKernelDevice || device is RecordingDevice
  }

  public func beginCapture() throws {
    filterLayouts.removeAll()
    try device.beginCapture()
    capturing = true
  }
  public func endCapture() throws -> any CapturedGraph {
    filterLayouts.removeAll()
    capturing = false
    return try device.endCapture()
  }
  public func abandonCapture() {
    filterLayouts.removeAll()
    capturing = false
    device.abandonCapture()
  }
  public func launch(_ graph: any CapturedGraph) throws { try device.launchGraph(graph) }

  public func makeBuffer(_ type: TensorType) throws -> any DeviceStorage { try CUDAStorage(device: device, type: type) }

  /// A buffer in `source`'s layout (`StorageLayout`), so that a graph captured over it reads a
  /// carried filter as the step before left it.
  public func makeBuffer(_ type: TensorType, like source: any DeviceStorage) throws -> any DeviceStorage {
    let b = try CUDAStorage(device: device, type: type)
    if let s = source as? CUDAStorage { b.layout = s.layout }
    return b
  }

  /// The bytes as they are where both buffers share a layout; otherwise the value is reordered
  /// into the destination's layout (a graph's buffer keeps the layout its work was captured with;
  /// a uniform one was read as row-major).
  public func copy(_ source: any DeviceStorage, into destination: any DeviceStorage, type: TensorType) throws {
    let (s, d) = (try cudaStorage(source, op: "copy"), try cudaStorage(destination, op: "copy"))
    if s.layout == .filterOHWI && d.layout != .filterOHWI {
      try reorderFromOHWI(s.pointer, type: type, into: d)
    } else if d.layout == .filterOHWI && s.layout == .rowMajor {
      try reorderToOHWI(s.pointer, type: type, into: d)
    } else {
      try device.copy(from: s.pointer, to: d.pointer, bytes: type.shape.count * type.dtype.byteSize)
      if d.layout == .uniform { d.layout = s.layout }
    }
  }

  public func uploadWords(_ words: [UInt64], to buffer: any DeviceStorage) throws {
    let b = try cudaStorage(buffer, op: "upload")
    try words.withUnsafeBytes { try device.upload($0, to: b.pointer) }
  }
}

/// UNET_CUDA_GRAPHS=0, read once: compiled programs then launch their kernels one by one.
enum ProcessEnvironment {
  static let graphsOff = ProcessInfo.processInfo.environment["UNET_CUDA_GRAPHS"] == "0"
}
