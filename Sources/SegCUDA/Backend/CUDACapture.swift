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
  }
  public func endCapture() throws -> any CapturedGraph {
    filterLayouts.removeAll()
    return try device.endCapture()
  }
  public func abandonCapture() {
    filterLayouts.removeAll()
    device.abandonCapture()
  }
  public func launch(_ graph: any CapturedGraph) throws { try device.launchGraph(graph) }

  public func makeBuffer(_ type: TensorType) throws -> any DeviceStorage { try CUDAStorage(device: device, type: type) }

  public func copy(_ source: any DeviceStorage, into destination: any DeviceStorage, type: TensorType) throws {
    let (s, d) = (try cudaStorage(source, op: "copy"), try cudaStorage(destination, op: "copy"))
    try device.copy(from: s.pointer, to: d.pointer, bytes: type.shape.count * type.dtype.byteSize)
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
