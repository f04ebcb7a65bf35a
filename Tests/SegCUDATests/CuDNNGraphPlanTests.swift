import CCUDA
import Foundation
import SegCore
import SegNN
import Testing

@testable import SegCUDA

// MARK: - Plans for every convolution of the U-Net, without a GPU

@Suite(.serialized) struct CuDNNGraphPlanTests {
  /// The precisions a training step runs its convolutions in: (compute dtype, TF32 allowed, name).
  static let precisions: [(DType, Bool, String)] = [(.f32, false, "fp32"), (.f32, true, "tf32"), (.f16, false, "fp16"), (.bf16, false, "bf16")]

  /// Every graph of a training step of `config` at `batch`, in every precision, fused graphs too
  /// (the shapes do not depend on the precision: the model is walked once).
  static func keys(_ config: UNetConfig, batch: Int) throws -> [ConvGraphKey] {
    let shapes = try UNetConvolutions.keys(config: config, batch: batch, computeType: .f32, tensorFloat32: false, fused: true)
    return precisions.flatMap { dtype, tf32, _ in
      shapes.map { k in
        var k = k
        k.dtype = dtype.rawValue
        k.tensorFloat32 = tf32
        return k
      }
    }
  }

  /// The walk finds what the U-Net runs: the reference model's 23 convolutions give forward,
  /// backward-data and backward-filter graphs (no backward-data for the image's conv), the
  /// transposed convs as backward-data with padding (0, 1), and the fused graph of each conv+ReLU.
  @Test func theUNetsConvolutionsAreListed() throws {
    let keys = try UNetConvolutions.keys(config: UNetConvolutions.reference, batch: 8, computeType: .f16, tensorFloat32: false, fused: true)
    let byKind = Dictionary(grouping: keys, by: \.kind)
    #expect(keys.allSatisfy { $0.batch == 8 && $0.dtype == "f16" })
    // The first layer reads the 572x572 one-channel image.
    #expect(keys.contains { $0.kind == .forward && $0.channels == 1 && $0.height == 572 && $0.outputChannels == 64 })
    #expect(!(byKind[.backwardData] ?? []).contains { $0.channels == 1 })
    // The stride-2 upconvs: 'same' padding of a 3x3 kernel over an even size pads 0 before and 1 after.
    let up = (byKind[.backwardData] ?? []).filter { $0.strideH == 2 }
    #expect(up.count == 4 && up.allSatisfy { $0.padTop == 0 && $0.padBottom == 1 && $0.padLeft == 0 && $0.padRight == 1 })
    // The 1x1 head has a bias but no ReLU: no fused graph.
    #expect(keys.contains { $0.kind == .forward && $0.kernelHeight == 1 && $0.outputChannels == 2 })
    #expect(!keys.contains { $0.kind == .forwardBiasReLU && $0.kernelHeight == 1 })
    #expect((byKind[.forwardBiasReLU] ?? []).count >= 10 && (byKind[.backwardFilter] ?? []).count >= 15)
  }

  /// Every graph of the reference's model at batch 8 and of a small model, in fp32, TF32, fp16 and
  /// bf16, forward (alone and fused with bias and ReLU), backward-data and backward-filter,
  /// finalizes at least one plan for sm_80 and sm_90 (the device fixtures), and a plan saved as
  /// JSON loads again. Prints the configurations found per graph. (The probe also checks how a
  /// refused attribute is reported.)
  @Test(.enabled(if: CuDNNGraphProbe.missing == nil, Comment(rawValue: CuDNNGraphProbe.missing ?? "")))
  func everyUNetConvolutionFinalizesAPlan() throws {
    let keys = try Self.keys(UNetConvolutions.reference, batch: 8) + Self.keys(UNetConvolutions.small, batch: 4)
    let answer = try CuDNNGraphProbe.run(PlanProbeRequest(devices: CuDNNDeviceFixtures.all, keys: keys))
    let results = answer.results
    #expect(results.count == keys.count * 2)
    // A refused attribute is reported with the call, the attribute, the descriptor and cuDNN's status.
    let wrong = answer.wrongAttributeError ?? "no error"
    #expect(
      wrong.contains("cudnnBackendSetAttribute(CUDNN_ATTR_TENSOR_DIMENSIONS on TENSOR)") && wrong.contains("CUDNN_STATUS_BAD_PARAM"),
      "\(wrong)")
    var lines = ["cuDNN graph plans per U-Net convolution (configurations offered / plans finalized, per device):"]
    for r in results {
      lines.append("  \(r.device) \(r.key): \(r.configurations) / \(r.plans)\(r.error.map { " ERROR \($0)" } ?? "")")
      #expect(r.error == nil, "\(r.device) \(r.key): \(r.error ?? "")")
      #expect(r.plans >= 1, "\(r.device) \(r.key): no plan finalized (\(r.configurations) configurations, \(r.rejected) filtered, \(r.failed) failed)")
      #expect(r.reloaded || r.plans == 0, "\(r.device) \(r.key): the first plan did not load again from its JSON")
    }
    print(lines.joined(separator: "\n"))
  }
}

// MARK: - Choosing engines, without cuDNN

@Suite struct PlanFilterTests {
  static let f32 = ConvGraphKey(
    .forward, input: [8, 64, 64, 64], kernel: (3, 3), outputChannels: 64, output: (62, 62),
    geometry: ConvGeometry(strides: (1, 1), padding: .zero), dtype: .f32, tensorFloat32: false)

  /// Tensor Core engines are TF32 for f32 data: only when TF32 is allowed; down-converting engines
  /// never; non-deterministic ones only when determinism is not asked for.
  @Test func enginesAreChosenAsPyTorchChoosesThem() {
    let tensorCore = [CCUDA_CUDNN_NUMERICAL_NOTE_TENSOR_CORE]
    var tf32Key = Self.f32
    tf32Key.tensorFloat32 = true
    let open = PlanFilter(tensorFloat32: true, deterministic: false, maxWorkspaceBytes: 1 << 30)
    #expect(!open.accepts(notes: tensorCore, Self.f32))
    #expect(open.accepts(notes: tensorCore, tf32Key))
    #expect(open.accepts(notes: [], Self.f32))
    #expect(!open.accepts(notes: [CCUDA_CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS], tf32Key))
    #expect(open.accepts(notes: [CCUDA_CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC], Self.f32))
    let strict = PlanFilter(tensorFloat32: false, deterministic: true, maxWorkspaceBytes: 1 << 30)
    #expect(!strict.accepts(notes: tensorCore, tf32Key))
    #expect(!strict.accepts(notes: [CCUDA_CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC], Self.f32))
    var half = Self.f32
    half.dtype = "f16"
    #expect(strict.accepts(notes: tensorCore, half))
  }

  /// Keys are equal exactly when every field is: shape, padding (asymmetric too), dtype, TF32.
  @Test func keysDistinguishWhatChangesAPlan() {
    var other = Self.f32
    #expect(other == Self.f32)
    other.padBottom = 1
    #expect(other != Self.f32)
    var tf32 = Self.f32
    tf32.tensorFloat32 = true
    #expect(Set([Self.f32, other, tf32]).count == 3)
    // TF32 means nothing for half data: the key drops it.
    let half = ConvGraphKey(
      .forward, input: [8, 64, 64, 64], kernel: (3, 3), outputChannels: 64, output: (62, 62),
      geometry: ConvGeometry(strides: (1, 1), padding: .zero), dtype: .f16, tensorFloat32: true)
    #expect(!half.tensorFloat32)
  }

  /// The plan store writes its file and a new store for the same cuDNN and device reads it back;
  /// another version or device starts empty.
  @Test func plansAreKeptBetweenRuns() throws {
    let dir = try temporaryFolder("plans")
    defer { try? FileManager.default.removeItem(at: dir) }
    let store = PlanStore(folder: dir, cudnnVersion: 92801, device: "NVIDIA-H200-sm90")
    #expect(store.store(Self.f32, plan: "{\"plan\":1}", milliseconds: 1.5) == nil)
    #expect(PlanStore(folder: dir, cudnnVersion: 92801, device: "NVIDIA-H200-sm90").plan(Self.f32) == "{\"plan\":1}")
    #expect(PlanStore(folder: dir, cudnnVersion: 92900, device: "NVIDIA-H200-sm90").plan(Self.f32) == nil)
    #expect(PlanStore(folder: dir, cudnnVersion: 92801, device: "NVIDIA-A100-sm80").plan(Self.f32) == nil)
    #expect(PlanStore(folder: nil, cudnnVersion: 92801, device: "x").store(Self.f32, plan: "{}", milliseconds: 1) == nil)
  }

  /// A device description names its device and architecture, and must be JSON with both.
  @Test func deviceDescriptionsAreRead() throws {
    let h200 = try CuDNNDeviceDescription(json: CuDNNDeviceFixtures.h200)
    #expect(h200.deviceName == "NVIDIA H200" && h200.deviceVersion == 900 && h200.cacheName == "NVIDIA-H200-sm90")
    #expect(try CuDNNDeviceDescription(json: CuDNNDeviceFixtures.a100).cacheName == "NVIDIA-A100-SXM4-80GB-sm80")
    #expect(throws: CUDAError.self) { try CuDNNDeviceDescription(json: "{\"deviceName\":\"x\"}") }
    #expect(throws: CUDAError.self) { try CuDNNDeviceDescription(json: "[1]") }
  }
}
