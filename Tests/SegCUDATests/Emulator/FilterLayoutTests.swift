import Foundation
import SegCheck
import SegCore
import SegNN
import SegTrain
import Testing

@testable import SegCUDA

// MARK: - Filters kept in the convolution library's layout

/// The CUDA backend keeps trained conv filters (weights, Adam's moments, half copies, gradients)
/// OHWI on the device (`StorageLayout`); everything the host sees is HWIO: downloads, so
/// checkpoints, and every op that does not read OHWI.
@Suite(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
struct FilterLayoutTests {
  /// After a training step on the emulator every filter, its moments and its half copy are
  /// OHWI; a checkpoint of them, loaded into a reference-backend U-Net, computes what the CUDA
  /// model computes (the file holds HWIO); loaded back into a CUDA trainer (row-major again), one
  /// more step from either trainer gives the same weights.
  @Test func checkpointsOfOHWIFiltersRoundTrip() throws {
    let config = StepCount.small()
    let device = RecordingDevice(wrapping: try HostEmulator.shared.get())
    let (a, backend) = try CapturedStepFixture.trainer(compiled: false, config: config, initialScale: 0x1p4, device: device)
    let (images, targets) = try CapturedStepFixture.batch(config, 1, on: backend)
    for _ in 0..<2 { _ = try a.step(images: images, targets: targets) }
    let filters = a.model.parameters.filter { $0.value.shape.rank == 4 }
    #expect(!filters.isEmpty)
    for p in filters {
      let moments = try #require(a.optimizer.moments[p.name])
      for t in [p.value, moments.m, moments.v] { #expect(layout(t) == .filterOHWI, "\(p.name)") }
    }

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("filter-layout-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("ckpt.safetensors")
    try Checkpoint(model: a.model, optimizer: a.optimizer, step: 2).save(to: url)
    let loaded = try Checkpoint.load(from: url)

    // The reference backend reads the file's filters as HWIO: the same logits as the CUDA model's.
    let reference = try UNet(config: config, seed: 9, on: ReferenceBackend.shared)
    try loaded.apply(to: reference, optimizer: Adam(learningRate: 1e-3))
    a.model.computeType = .f32
    let x = randomHost(images.type, seed: 3)
    let got = try a.model(Tensor(x, on: backend)).host().doubles
    let expected = try reference(Tensor(x, on: ReferenceBackend.shared)).host().doubles
    let worst = zip(got, expected).map { abs($0 - $1) / max(abs($1), 1) }.max() ?? 1
    #expect(got.count == expected.count && worst < 1e-4, "CUDA logits vs the checkpoint on the reference: \(worst)")
    a.model.computeType = .f16

    // Loaded into a CUDA trainer the filters are row-major; the next step is the same.
    let (b, backendB) = try CapturedStepFixture.trainer(compiled: false, config: config, initialScale: 0x1p4, device: device)
    let (imagesB, targetsB) = try CapturedStepFixture.batch(config, 1, on: backendB)
    try loaded.apply(to: b.model, optimizer: b.optimizer)
    b.lossScaler = a.lossScaler
    #expect(filters.allSatisfy { p in b.model.parameters.first { $0.name == p.name }.map { layout($0.value) != .filterOHWI } ?? false })
    _ = try a.step(images: images, targets: targets)
    _ = try b.step(images: imagesB, targets: targetsB)
    for (p, q) in zip(a.model.parameters, b.model.parameters) {
      #expect(try p.value.host().floats == q.value.host().floats, "\(p.name) after a step from the checkpoint")
    }
  }

  /// A filter gradient (written OHWI) reads as its HWIO value through a download, through ops
  /// that do not read OHWI (a reshape) and through elementwise ops with a row-major operand; an
  /// elementwise op on OHWI operands alone keeps OHWI.
  @Test func filterGradientsReadAsTheirValue() throws {
    let backend = CUDABackend(device: try HostEmulator.shared.get(), convolutions: HostConvolutions(computes: true))
    let geometry = ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 1, left: 1, right: 1))
    let x = randomHost(TensorType([2, 5, 6, 3], .f32), seed: 7), dy = randomHost(TensorType([2, 5, 6, 4], .f32), seed: 8)
    func gradient(_ b: any Backend) throws -> Tensor {
      try conv2dBackwardFilter(Tensor(x, on: b), Tensor(dy, on: b), kernelSize: (3, 3), geometry: geometry)
    }
    let f = try gradient(backend), expected = try gradient(ReferenceBackend.shared).host().doubles
    #expect(layout(f) == .filterOHWI)
    func close(_ a: [Double], _ b: [Double]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(abs($1), 1) } }
    #expect(close(try f.host().doubles, expected), "download")
    #expect(close(try reshape(f, [27, 4]).host().doubles, expected), "reshape")
    let r = randomHost(f.type, seed: 9)
    let sum = try (f + Tensor(r, on: backend)).host().doubles
    #expect(close(sum, zip(expected, r.doubles).map { $0 + $1 }), "with a row-major operand")
    let doubled = try f + f
    let twice = try doubled.host().doubles
    #expect(layout(doubled) == .filterOHWI && close(twice, expected.map { $0 + $0 }))
  }

  private func layout(_ t: Tensor) -> StorageLayout? { (t.node.storage as? CUDAStorage)?.layout }
}
