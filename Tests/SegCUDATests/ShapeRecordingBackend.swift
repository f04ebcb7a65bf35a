import Foundation
import SegCore
import SegNN

@testable import SegCUDA

// MARK: - A backend that only records shapes

/// A backend that computes nothing: each op's kernel records the op and its operand types and
/// returns an empty buffer, so that a full-size model's forward and backward pass can be walked in
/// no time to list the convolutions it runs.
final class ShapeRecordingBackend: Backend, @unchecked Sendable {
  /// An op as the backend saw it.
  struct Call {
    let op: any Primitive
    let inputs: [TensorType]
    let output: TensorType
  }

  final class Empty: DeviceStorage {}

  let name = "shapes"
  private(set) var kernels = KernelTable(backendName: "shapes")
  private(set) var calls: [Call] = []

  init() {
    var table = KernelTable(backendName: name)
    for entry in ReferenceBackend.shared.kernels.registered { record(entry.type, in: &table) }
    kernels = table
  }

  private func record<P: Primitive>(_ type: P.Type, in table: inout KernelTable) {
    table.registerOutputs(type, "record") { [unowned self] op, inputs, outputs in
      calls.append(Call(op: op, inputs: inputs.map(\.type), output: outputs[0]))
      return outputs.map { _ in Empty() }
    }
  }

  func upload(_ host: HostTensor) throws -> any DeviceStorage { Empty() }

  func download(_ storage: any DeviceStorage, type: TensorType) throws -> HostTensor {
    throw TensorError(op: "download", operands: [type], "the shape-recording backend holds no values")
  }
}

// MARK: - The U-Net's convolutions

/// The convolution graphs a U-Net training step runs (forward, then the gradients of every
/// parameter), found by running SegNN's UNet on the recording backend.
enum UNetConvolutions {
  /// The distinct graph keys of one training step of `config` at `batch` with convolutions in
  /// `computeType` (TF32 allowed with `tensorFloat32`); with `fused`, also the fused
  /// conv+bias+ReLU graph of each conv that has both.
  static func keys(config: UNetConfig, batch: Int, computeType: DType, tensorFloat32: Bool, fused: Bool) throws -> [ConvGraphKey] {
    let backend = ShapeRecordingBackend()
    let model = try UNet(config: config, on: backend)
    model.computeType = computeType
    let x = try Tensor(repeating: 0, shape: [batch, config.inputSize, config.inputSize, config.inputChannels], on: backend)
    let loss = try sum(model(x, dropoutSeed: 1))
    _ = try gradients(of: loss, wrt: model.parameters.map(\.value))
    var keys: [ConvGraphKey] = []
    func add(_ k: ConvGraphKey) { if !keys.contains(k) { keys.append(k) } }
    for call in backend.calls {
      let out = call.output
      switch call.op {
      case let p as Conv2D:
        let f = call.inputs[1].shape
        var key = ConvGraphKey(
          .forward, input: call.inputs[0].shape, kernel: (f[0], f[1]), outputChannels: f[3], output: (out.shape[1], out.shape[2]),
          geometry: p.geometry, dtype: out.dtype, tensorFloat32: tensorFloat32)
        add(key)
        if fused, call.inputs.count == 3, p.activation == .relu {
          key.kind = .forwardBiasReLU
          add(key)
        }
      case let p as Conv2DBackwardData:
        let (dy, f) = (call.inputs[0].shape, call.inputs[1].shape)
        add(
          ConvGraphKey(
            .backwardData, input: out.shape, kernel: (f[0], f[1]), outputChannels: f[3], output: (dy[1], dy[2]),
            geometry: p.geometry, dtype: out.dtype, tensorFloat32: tensorFloat32))
      case let p as Conv2DBackwardFilter:
        let dy = call.inputs[1].shape
        add(
          ConvGraphKey(
            .backwardFilter, input: call.inputs[0].shape, kernel: (out.shape[0], out.shape[1]), outputChannels: out.shape[3],
            output: (dy[1], dy[2]), geometry: p.geometry, dtype: out.dtype, tensorFloat32: tensorFloat32))
      default: continue
      }
    }
    return keys
  }

  /// The reference's model (572 input, valid padding, 64..1024 filters).
  static let reference = UNetConfig()

  /// A small model: depth 3, 16 base filters, 'same' padding, 128 input (the device check's).
  static let small: UNetConfig = {
    var c = UNetConfig()
    c.depth = 3
    c.baseFilters = 16
    c.padding = .same
    c.inputSize = 128
    return c
  }()
}
