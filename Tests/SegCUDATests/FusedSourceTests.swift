import Foundation
import SegCore
import SegCheck
import SegTestSupport
import Testing

@testable import SegCUDA

// MARK: - Generated fused kernels

/// Fused ops as the compiler makes them: a transposed conv's bias + ReLU, a chain with a single
/// value and a ReLU backward, the same in f16 between casts, and one in f64.
private let cases: [(label: String, op: FusedElementwise, inputs: [TensorType])] = {
  let full = TensorType([2, 5, 3, 8], .f32), row = TensorType([8], .f32), one = TensorType([1], .f32)
  func make(_ types: [TensorType], _ ops: [(FusedElementwise.Elementwise, [FusedElementwise.Source])]) -> FusedElementwise {
    try! FusedElementwise(inputs: types, ops)
  }
  let biasReLU = make([full, row], [(.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)])])
  let chain = make([full, full, one], [
    (.unary(Unary(.exp)), [.input(0)]), (.binary(Binary(.div)), [.step(0), .input(2)]),
    (.unary(Unary(.mulScalar(0.1))), [.step(1)]), (.binary(Binary(.sub)), [.step(2), .input(1)]),
    (.unary(Unary(.sqrt)), [.input(1)]), (.binary(Binary(.mul)), [.step(3), .step(4)]),
    (.reluBackward(ReLUBackward()), [.step(5), .input(0)]), (.unary(Unary(.neg)), [.step(6)]),
  ])
  let h = TensorType([3, 7, 16], .f16), hr = TensorType([16], .f16)
  let half = make([h, hr], [
    (.binary(Binary(.mul)), [.input(0), .input(1)]), (.cast(Cast(dtype: .f32)), [.step(0)]),
    (.unary(Unary(.addScalar(-0.3))), [.step(1)]), (.relu(ReLU()), [.step(2)]), (.cast(Cast(dtype: .f16)), [.step(3)]),
  ])
  let d = TensorType([37], .f64)
  let double = make([d, TensorType([1], .f64)], [(.unary(Unary(.log)), [.input(0)]), (.binary(Binary(.add)), [.step(0), .input(1)])])
  return [("bias relu", biasReLU, [full, row]), ("chain", chain, [full, full, one]), ("f16 with casts", half, [h, hr]),
          ("f64", double, [d, TensorType([1], .f64)])]
}()

private func family(_ c: (label: String, op: FusedElementwise, inputs: [TensorType])) throws -> KernelFamily {
  try #require(FusedKernelSource.family(for: c.op, inputs: c.inputs), "\(c.label): no kernel generated")
}

/// The elements' bytes as the device holds them.
private func rawBytes(_ h: HostTensor) -> [UInt8] {
  switch h.data {
  case .f64(let a): return bytes(a)
  case .f32(let a): return bytes(a)
  case .f16(let a): return bytes(a)
  case .bf16(let a): return bytes(a)
  case .i32(let a): return bytes(a)
  case .u8(let a): return a
  }
}

/// Device bytes of a floating `type` as a host tensor.
private func hostTensor(_ type: TensorType, _ raw: [UInt8]) throws -> HostTensor {
  switch type.dtype {
  case .f64: return try HostTensor(shape: type.shape, data: .f64(values(raw, as: Double.self)))
  case .f32: return try HostTensor(shape: type.shape, data: .f32(values(raw, as: Float.self)))
  case .f16: return try HostTensor(shape: type.shape, data: .f16(values(raw, as: Float16.self)))
  default: return try HostTensor(shape: type.shape, data: .bf16(values(raw, as: UInt16.self)))
  }
}

@Suite struct FusedSourceTests {
  /// Every generated kernel compiles with the real NVRTC for sm_80 and sm_90, without a warning,
  /// and the CUBIN defines it.
  @Test(
    .enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)),
    arguments: cases.indices, [80, 90])
  func generatedKernelCompiles(_ index: Int, _ architecture: Int) throws {
    let compiler = try #require(try CUDATestEnvironment.compiler())
    let f = try family(cases[index])
    let module = try compiler.compile(f.source, name: "\(f.name).cu", architecture: architecture)
    #expect(containsSymbol(module.image, f.kernels[0]), "\(cases[index].label): \(f.kernels[0]) missing")
    #expect(module.log.isEmpty, "NVRTC warned: \(module.log)")
  }

  /// What the generator does not cover (a general broadcast) is refused, and the backend's dump
  /// shows the kernel.
  @Test func coverageAndDump() throws {
    let full = TensorType([2, 4, 8], .f32), column = TensorType([2, 4, 1], .f32)
    let op = try FusedElementwise(inputs: [full, column], [(.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)])])
    #expect(FusedKernelSource.family(for: op, inputs: [full, column]) == nil)
    let text = try #require(FusedKernelSource.family(for: cases[0].op, inputs: cases[0].inputs)).source
    #expect(text.contains("AddOp::apply(a0, a1)") && text.contains("ReluOp::apply(t0, (float)0)"), "the steps call the unfused kernels' functors")
  }

  /// The generated kernels run on the host emulator and give the fused op's reference (its steps'
  /// reference kernels in turn) within a few ulps (exp and log come from another library).
  @Test(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
  func generatedKernelsMatchTheReference() throws {
    let families = try cases.map(family)
    let emu = try HostEmulator(extra: families)
    for (c, f) in zip(cases, families) {
      let hosts = c.inputs.enumerated().map { k, t in randomHost(t, seed: 40 + UInt64(k), in: 0.1..<2) }
      let output = c.op.steps.last!.type
      let pointers = try hosts.map { h -> UInt64 in
        let bytes = rawBytes(h)
        let p = try emu.allocate(bytes.count)
        try bytes.withUnsafeBytes { try emu.upload($0, to: p) }
        return p
      }
      let outBytes = output.shape.count * output.dtype.byteSize
      let out = try emu.allocate(outBytes)
      defer { (pointers + [out]).forEach { emu.free($0) } }
      try emu.launch(
        f.kernels[0], count: output.shape.count,
        arguments: pointers.map { .pointer($0) } + [.pointer(out), .int64(Int64(output.shape.count)), .int64(Int64(output.shape.dims.last!))])
      var raw = [UInt8](repeating: 0, count: outBytes)
      try raw.withUnsafeMutableBytes { try emu.download(out, into: $0) }
      let got = try hostTensor(output, raw).doubles
      let want = try c.op.reference(hosts, output: output).doubles
      let tolerance = output.dtype == .f16 ? 1e-3 : output.dtype == .f64 ? 1e-12 : 1e-6
      let worst = zip(got, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
      #expect(worst <= tolerance, "\(c.label): largest relative difference \(worst)")
    }
  }

  /// The backend launches each fused op as its one generated kernel (compiled once per distinct
  /// expression and operand types: the same op twice is one handle), on the emulator, within the
  /// tolerances of the other kernels against the reference backend; an operand the generator does
  /// not cover (a general broadcast) runs the steps one kernel each.
  @Test(.enabled(if: HostEmulator.available, "no C++ compiler for the kernel emulator"))
  func backendLaunchesTheGeneratedKernels() throws {
    let device = RecordingDevice(wrapping: try HostEmulator.shared.get())
    let backend = CUDABackend(device: device, convolutions: nil)
    for c in cases {
      let hosts = c.inputs.enumerated().map { k, t in randomHost(t, seed: 70 + UInt64(k), in: 0.1..<2) }
      let ops = c.op.steps.map { ($0.op, $0.operands) }
      var handles: [String] = []
      for _ in 0..<2 {
        device.reset()
        let got = try fusedElementwise(try hosts.map { try Tensor($0, on: backend) }, ops).host().doubles
        let counts = device.counts
        #expect(counts.launches == 1, "\(c.label): \(counts.byName)")
        handles += counts.byName.keys.filter { $0.hasPrefix("fused_") }
        let want = try fusedElementwise(try hosts.map { try Tensor($0, on: ReferenceBackend.shared) }, ops).host().doubles
        let output = c.op.steps.last!.type.dtype
        let tolerance = output == .f16 ? 1e-3 : output == .f64 ? 1e-12 : 1e-6
        let worst = zip(got, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
        #expect(got.count == want.count && worst <= tolerance, "\(c.label): largest relative difference \(worst)")
      }
      #expect(handles.count == 2 && handles[0] == handles[1], "\(c.label): \(handles)")
    }
    let full = TensorType([2, 4, 8], .f32), column = TensorType([2, 4, 1], .f32)
    let ops: [(FusedElementwise.Elementwise, [FusedElementwise.Source])] = [(.binary(Binary(.add)), [.input(0), .input(1)]), (.relu(ReLU()), [.step(0)])]
    let hosts = [randomHost(full, seed: 1), randomHost(column, seed: 2)]
    device.reset()
    let got = try fusedElementwise(try hosts.map { try Tensor($0, on: backend) }, ops).host().doubles
    #expect(device.counts.byName == ["add_f32": 1, "relu_f32": 1])
    let want = try fusedElementwise(try hosts.map { try Tensor($0, on: ReferenceBackend.shared) }, ops).host().doubles
    #expect(got == want)
  }
}
