import Foundation
@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Winograd F(4x4,3x3) against the reference

/// The Winograd candidate on every 3x3 stride-1 convolution shape of the U-Net (its real channel
/// counts, small images: the large channel counts on the smallest), forward, backward-data and
/// backward-filter,
/// valid and same padding, odd sizes and partial edge tiles, against the reference backend. The
/// error is reported relative to the output's scale (its largest magnitude).
@Suite struct WinogradTests {
  /// One convolution: channels, image size, padding.
  struct Case: CustomTestStringConvertible, Sendable {
    let c, o, h, w: Int
    let same: Bool
    var testDescription: String { "\(batch)x \(c)->\(o) at \(h)x\(w) \(same ? "same" : "valid")" }
    /// Two images, one where the channels make the reference slow.
    var batch: Int { c * o >= 256 * 256 ? 1 : 2 }
    /// Each side's padding.
    var pad: Int { same ? 1 : 0 }

    /// Forward, backward-data and backward-filter of input x, filter f (HWIO) and output gradient
    /// dy on `backend`, each as floats.
    func directions(x: HostTensor, f: HostTensor, dy: HostTensor, on backend: any Backend) throws -> [[Float]] {
      let geometry = ConvGeometry(strides: (1, 1), padding: Padding2D(top: pad, bottom: pad, left: pad, right: pad))
      return [
        try conv2d(Tensor(x, on: backend), Tensor(f, on: backend), padding: same ? .same : .valid).floats(),
        try conv2dBackwardData(Tensor(dy, on: backend), Tensor(f, on: backend), inputSize: (h, w), geometry: geometry).floats(),
        try conv2dBackwardFilter(Tensor(x, on: backend), Tensor(dy, on: backend), kernelSize: (3, 3), geometry: geometry).floats(),
      ]
    }
  }

  /// The U-Net's 3x3 convolutions (in -> out channels) at sizes that keep the reference quick: odd
  /// sizes whose outputs leave partial 4x4 tiles at the bottom and right edges.
  static let cases: [Case] = [
    Case(c: 1, o: 64, h: 19, w: 17, same: false),
    Case(c: 64, o: 64, h: 17, w: 13, same: false),
    Case(c: 64, o: 128, h: 11, w: 10, same: true),
    Case(c: 128, o: 128, h: 11, w: 9, same: false),
    Case(c: 128, o: 256, h: 9, w: 9, same: false),
    Case(c: 256, o: 256, h: 7, w: 9, same: true),
    Case(c: 256, o: 512, h: 7, w: 6, same: false),
    Case(c: 512, o: 512, h: 6, w: 7, same: false),
    Case(c: 512, o: 1024, h: 5, w: 6, same: false),
    Case(c: 1024, o: 1024, h: 6, w: 5, same: false),
    Case(c: 1024, o: 512, h: 5, w: 5, same: true),
    Case(c: 512, o: 256, h: 7, w: 6, same: false),
    Case(c: 256, o: 128, h: 9, w: 10, same: false),
    Case(c: 128, o: 64, h: 13, w: 11, same: true),
    // Channels off the 16-lane block, several images, and images smaller than one tile.
    Case(c: 5, o: 7, h: 10, w: 11, same: false),
    Case(c: 3, o: 20, h: 3, w: 4, same: true),
  ]

  /// fp32 Winograd: the error is expected near 1e-5 of the output's scale (docs/reference.md).
  static let bound = 5e-5

  @Test(arguments: cases) func forwardMatchesReference(_ c: Case) throws {
    let x = random([c.batch, c.h, c.w, c.c], seed: 11)
    let f = random([3, 3, c.c, c.o], seed: 12, in: -0.1..<0.1)
    let b = random([c.o], seed: 13)
    let run = { (backend: any Backend) throws -> [Float] in
      try conv2d(Tensor(x, on: backend), Tensor(f, on: backend), bias: Tensor(b, on: backend),
                 padding: c.same ? .same : .valid, activation: .relu).floats()
    }
    let error = try ConvAlgorithm.with(.winograd) { relativeError(try run(CPUBackend.shared), try run(ReferenceBackend.shared)) }
    print("winograd forward \(c.testDescription): largest error \(error) of the output's scale")
    #expect(error < Self.bound, "\(c.testDescription): \(error)")
  }

  @Test(arguments: cases) func backwardDataMatchesReference(_ c: Case) throws {
    let pad = c.same ? 1 : 0
    let (oh, ow) = (c.h + 2 * pad - 2, c.w + 2 * pad - 2)
    let dy = random([c.batch, oh, ow, c.o], seed: 21)
    let f = random([3, 3, c.c, c.o], seed: 22, in: -0.1..<0.1)
    let geometry = ConvGeometry(strides: (1, 1), padding: Padding2D(top: pad, bottom: pad, left: pad, right: pad))
    let run = { (backend: any Backend) throws -> [Float] in
      try conv2dBackwardData(Tensor(dy, on: backend), Tensor(f, on: backend), inputSize: (c.h, c.w), geometry: geometry).floats()
    }
    let error = try ConvAlgorithm.with(.winograd) { relativeError(try run(CPUBackend.shared), try run(ReferenceBackend.shared)) }
    print("winograd backward-data \(c.testDescription): largest error \(error) of the output's scale")
    #expect(error < Self.bound, "\(c.testDescription): \(error)")
  }

  @Test(arguments: cases) func backwardFilterMatchesReference(_ c: Case) throws {
    let error = try backwardFilterError(c, isa: nil)
    print("winograd backward-filter \(c.testDescription): largest error \(error) of the gradient's scale")
    #expect(error < Self.filterBound, "\(c.testDescription): \(error)")
  }

  /// Backward-filter sums over every tile of every image: expected near 4e-6 of the gradient's
  /// scale on these sizes (docs/reference.md), larger on large images.
  static let filterBound = 2e-5

  /// The filter gradient's largest difference from the reference's, over the reference's largest
  /// magnitude; with `isa`, the Winograd kernels of that instruction set.
  private func backwardFilterError(_ c: Case, isa: WinogradISA?) throws -> Double {
    let pad = c.same ? 1 : 0
    let (oh, ow) = (c.h + 2 * pad - 2, c.w + 2 * pad - 2)
    let x = random([c.batch, c.h, c.w, c.c], seed: 91)
    let dy = random([c.batch, oh, ow, c.o], seed: 92)
    let geometry = ConvGeometry(strides: (1, 1), padding: Padding2D(top: pad, bottom: pad, left: pad, right: pad))
    let run = { (backend: any Backend) throws -> [Float] in
      try conv2dBackwardFilter(Tensor(x, on: backend), Tensor(dy, on: backend), kernelSize: (3, 3), geometry: geometry).floats()
    }
    let got = try WinogradISA.with(isa ?? .best) { try ConvAlgorithm.with(.winograd) { try run(CPUBackend.shared) } }
    return relativeError(got, try run(ReferenceBackend.shared))
  }

  /// The AVX2 and baseline kernels (the processor's best set is the one the tests above ran) on a
  /// thin layer, a deep one whose pieces the threads share, and channels off the block.
  @Test(arguments: [WinogradISA.avx2, .baseline]) func otherInstructionSetsMatchReference(_ isa: WinogradISA) throws {
    guard isa <= WinogradISA.best else {
      print("winograd \(isa): skipped, this processor lacks it")
      return
    }
    for c in [Case(c: 64, o: 64, h: 17, w: 13, same: false), Case(c: 512, o: 512, h: 6, w: 7, same: true),
              Case(c: 5, o: 7, h: 10, w: 11, same: false)] {
      let x = random([c.batch, c.h, c.w, c.c], seed: 81)
      let f = random([3, 3, c.c, c.o], seed: 82, in: -0.1..<0.1)
      let b = random([c.o], seed: 83)
      let dy = random([c.batch, c.h, c.w, c.o], seed: 84)
      let geometry = ConvGeometry(strides: (1, 1), padding: Padding2D(top: 1, bottom: 1, left: 1, right: 1))
      let run = { (backend: any Backend) throws -> (y: [Float], dx: [Float]) in
        let y = try conv2d(Tensor(x, on: backend), Tensor(f, on: backend), bias: Tensor(b, on: backend),
                           padding: c.same ? .same : .valid, activation: .relu).floats()
        let dx = try conv2dBackwardData(Tensor(dy, on: backend), Tensor(f, on: backend), inputSize: (c.h, c.w), geometry: geometry)
        return (y, try dx.floats())
      }
      let got = try WinogradISA.with(isa) { try ConvAlgorithm.with(.winograd) { try run(CPUBackend.shared) } }
      let want = try run(ReferenceBackend.shared)
      let (ey, edx) = (relativeError(got.y, want.y), relativeError(got.dx, want.dx))
      print("winograd \(isa) \(c.testDescription): largest error \(ey) forward, \(edx) backward-data")
      #expect(ey < Self.bound && edx < Self.bound, "\(isa) \(c.testDescription): \(ey), \(edx)")
      let edw = try backwardFilterError(c, isa: isa)
      print("winograd \(isa) \(c.testDescription): largest error \(edw) backward-filter")
      #expect(edw < Self.filterBound, "\(isa) \(c.testDescription): \(edw)")
    }
  }

  /// Asymmetric and large padding: a backward-data pad of 2 - pad below zero starts inside dy.
  @Test func unevenPadding() throws {
    let x = random([1, 9, 10, 16], seed: 31), f = random([3, 3, 16, 8], seed: 32, in: -0.3..<0.3)
    for p in [Padding2D(top: 2, bottom: 0, left: 0, right: 1), Padding2D(top: 3, bottom: 1, left: 4, right: 0)] {
      let geometry = ConvGeometry(strides: (1, 1), padding: p)
      let run = { (backend: any Backend) throws -> (y: [Float], dx: [Float], dw: [Float]) in
        let xt = try Tensor(x, on: backend)
        let y = try conv2d(xt, Tensor(f, on: backend), padding: .explicit(p))
        let dx = try conv2dBackwardData(y, Tensor(f, on: backend), inputSize: (9, 10), geometry: geometry)
        let dw = try conv2dBackwardFilter(xt, y, kernelSize: (3, 3), geometry: geometry)
        return (try y.floats(), try dx.floats(), try dw.floats())
      }
      let (got, want) = try ConvAlgorithm.with(.winograd) { (try run(CPUBackend.shared), try run(ReferenceBackend.shared)) }
      #expect(relativeError(got.y, want.y) < Self.bound, "\(p)")
      #expect(relativeError(got.dx, want.dx) < Self.bound, "\(p)")
      #expect(relativeError(got.dw, want.dw) < Self.filterBound, "\(p)")
    }
  }

  /// Pieces of a few tiles (so that sums carry from piece to piece, and thin layers' parts each
  /// get several), on one thread and on several: every direction matches the reference, and
  /// the results are the same bit for bit whatever the thread count.
  @Test func smallPiecesAndThreadCounts() throws {
    for c in [Case(c: 64, o: 64, h: 17, w: 13, same: false), Case(c: 512, o: 512, h: 7, w: 6, same: true),
              Case(c: 5, o: 7, h: 10, w: 11, same: false)] {
      let x = random([c.batch, c.h, c.w, c.c], seed: 101)
      let f = random([3, 3, c.c, c.o], seed: 102, in: -0.1..<0.1)
      let dy = random([c.batch, c.same ? c.h : c.h - 2, c.same ? c.w : c.w - 2, c.o], seed: 103)
      let run = { (backend: any Backend) in try c.directions(x: x, f: f, dy: dy, on: backend) }
      let want = try run(ReferenceBackend.shared)
      var results: [[[Float]]] = []
      for threads in [1, 2, 3] {
        let got = try Parallel.$threadLimit.withValue(threads) {
          try WinogradProblem.$chunkLimit.withValue(3) { try ConvAlgorithm.with(.winograd) { try run(CPUBackend.shared) } }
        }
        let errors = zip(got, want).map { relativeError($0, $1) }
        print("winograd pieces of 3 tiles, \(threads) threads, \(c.testDescription): errors \(errors)")
        #expect(errors[0] < Self.bound && errors[1] < Self.bound && errors[2] < Self.filterBound, "\(c.testDescription): \(errors)")
        results.append(got)
      }
      #expect(results.allSatisfy { $0 == results[0] }, "\(c.testDescription): results depend on the thread count")
    }
  }

  /// Pieces of 1, 2, 5 and 7 tiles and whole ones (cutting the input transform's runs of tiles
  /// anywhere in a tile row), with the output's streaming stores forced on and off, in every
  /// instruction set: forward and backward-data do not change by a bit (each tile's sums are its
  /// own), and every direction matches the reference.
  @Test func pieceSizesAndStreamingStoresChangeNoBit() throws {
    for c in [Case(c: 20, o: 24, h: 23, w: 19, same: true), Case(c: 16, o: 16, h: 14, w: 22, same: false)] {
      let x = random([c.batch, c.h, c.w, c.c], seed: 111)
      let f = random([3, 3, c.c, c.o], seed: 112, in: -0.1..<0.1)
      let dy = random([c.batch, c.h + 2 * c.pad - 2, c.w + 2 * c.pad - 2, c.o], seed: 113)
      let run = { (backend: any Backend) in try c.directions(x: x, f: f, dy: dy, on: backend) }
      let want = try run(ReferenceBackend.shared)
      for isa in WinogradISA.allCases where isa <= WinogradISA.best {
        var first: [[Float]]?
        for limit in [1, 2, 5, 7, nil] as [Int?] {
          for streaming in [false, true] {
            let got = try WinogradISA.with(isa) {
              try WinogradProblem.$chunkLimit.withValue(limit) {
                try WinogradProblem.$streamingOutput.withValue(streaming) {
                  try ConvAlgorithm.with(.winograd) { try run(CPUBackend.shared) }
                }
              }
            }
            let errors = zip(got, want).map { relativeError($0, $1) }
            let label = "\(isa), pieces of \(limit.map(String.init) ?? "any") tiles, streaming \(streaming), \(c.testDescription)"
            #expect(errors[0] < Self.bound && errors[1] < Self.bound && errors[2] < Self.filterBound, "\(label): \(errors)")
            if let first {
              #expect(got[0] == first[0] && got[1] == first[1], "\(label): forward or backward-data changed")
            } else {
              first = got
            }
          }
        }
      }
    }
  }

  // MARK: Filter cache

  /// A filter is transformed again when its values change, and a new tensor never reuses another's
  /// transform.
  @Test func filterCacheNeverServesStaleValues() throws {
    let cpu = CPUBackend.shared
    let x = try Tensor(random([1, 8, 8, 16], seed: 41), on: cpu)
    try ConvAlgorithm.with(.winograd) {
      for seed in UInt64(0)..<4 {
        let fHost = random([3, 3, 16, 16], seed: 50 + seed)
        let got = try conv2d(x, try Tensor(fHost, on: cpu)).floats()
        let want = try conv2d(try Tensor(x.host()), try Tensor(fHost)).floats()
        #expect(relativeError(got, want) < Self.bound, "filter \(seed)")
      }
      // The same storage rewritten in place (as the compiled step's Adam does), and said so, gets
      // a fresh transform; the second use kept the stale one.
      let f = try Tensor(random([3, 3, 16, 16], seed: 60), on: cpu)
      _ = try conv2d(x, f).floats()
      _ = try conv2d(x, f).floats()
      let storage = f.node.storage as! CPUStorage
      #expect(WinogradFilterCache.keeps(storage, rotated: false))
      let buffer = try storage.plainBuffer()
      let values = buffer.pointer.assumingMemoryBound(to: Float.self)
      for i in 0..<(9 * 16 * 16) { values[i] = -values[i] }
      storage.valuesRewritten()
      let got = try conv2d(x, f).floats()
      let want = try conv2d(try Tensor(x.host()), try Tensor(f.host())).floats()
      #expect(relativeError(got, want) < Self.bound)
    }
  }

  /// A filter's first use keeps no transform (a training step's, each filter new), its second keeps
  /// one, and later uses take it.
  @Test func filterCacheKeepsFromTheSecondUse() throws {
    let cpu = CPUBackend.shared
    let x = try Tensor(random([1, 8, 8, 16], seed: 42), on: cpu)
    try ConvAlgorithm.with(.winograd) {
      let f = try Tensor(random([3, 3, 16, 16], seed: 61), on: cpu)
      let storage = f.node.storage as! CPUStorage
      let first = try conv2d(x, f).floats()
      #expect(!WinogradFilterCache.keeps(storage, rotated: false))
      #expect(try conv2d(x, f).floats() == first)
      #expect(WinogradFilterCache.keeps(storage, rotated: false))
      #expect(try conv2d(x, f).floats() == first)
      #expect(WinogradFilterCache.keeps(storage, rotated: false) && !WinogradFilterCache.keeps(storage, rotated: true))
    }
  }

  // MARK: Choice

  /// direct never runs Winograd; auto follows its rule in all three directions; every use is
  /// recorded. Each call has an image size of its own, so that other tests' convolutions (the log
  /// is the process's) do not count.
  @Test func algorithmSettingDecides() throws {
    let cpu = CPUBackend.shared
    /// The algorithm each direction of a valid convolution ran with.
    func ran(_ a: ConvAlgorithm, size: Int, channels: Int) throws -> [String: String] {
      let out = size - 2
      let x = try Tensor(random([1, size, size, channels], seed: 71), on: cpu)
      let f = try Tensor(random([3, 3, channels, channels], seed: 72), on: cpu)
      let dy = try Tensor(random([1, out, out, channels], seed: 73), on: cpu)
      let geometry = ConvGeometry(strides: (1, 1), padding: .zero)
      try ConvAlgorithm.with(a) {
        _ = try conv2d(x, f).floats()
        _ = try conv2dBackwardData(dy, f, inputSize: (size, size), geometry: geometry).floats()
        _ = try conv2dBackwardFilter(x, dy, kernelSize: (3, 3), geometry: geometry).floats()
      }
      let (xs, ys) = ("1x\(size)x\(size)x\(channels)", "1x\(out)x\(out)x\(channels)")
      let shapes = ["forward": "\(xs) -> \(ys)", "backwardData": "\(ys) -> \(xs)", "backwardFilter": "\(xs) -> \(ys)"]
      return Dictionary(uniqueKeysWithValues: cpu.convAlgorithmLog.filter { shapes[$0.direction] == $0.shape }.map { ($0.direction, $0.algorithm) })
    }
    func all(_ algorithm: String) -> [String: String] {
      ["forward": algorithm, "backwardData": algorithm, "backwardFilter": algorithm]
    }
    #expect(try ran(.direct, size: 31, channels: 64) == all("direct"))
    #expect(try ran(.winograd, size: 32, channels: 64) == all("winograd"))
    #expect(try ran(.auto, size: 35, channels: 64) == all("winograd"))
    #expect(try ran(.auto, size: 34, channels: 4) == all("direct"))
    #expect(try ran(.auto, size: 20, channels: 64) == all("direct"), "18x18 outputs are below the rule's 32x32")
    // The rule is the layer's: backward-data of a 31x31 output (a 33x33 result) stays direct too.
    #expect(try ran(.auto, size: 33, channels: 64) == all("direct"), "31x31 outputs are below the rule's 32x32")
    #expect(try ran(.auto, size: 34, channels: 64) == all("winograd"))
  }

  @Test func environmentChoosesTheAlgorithm() throws {
    #expect(try CPUBackendOptions(environment: [:]).convAlgorithm == .auto)
    #expect(try CPUBackendOptions(environment: ["UNET_CPU_CONV_ALGORITHM": "winograd"]).convAlgorithm == .winograd)
    #expect(throws: CPUBackendOptionsError.self) { try CPUBackendOptions(environment: ["UNET_CPU_CONV_ALGORITHM": "fft"]) }
  }

  /// Largest |a - b| over the largest |b|.
  private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    let scale = b.reduce(0) { max($0, abs(Double($1))) }
    let diff = zip(a, b).reduce(0) { max($0, abs(Double($1.0) - Double($1.1))) }
    return diff / max(scale, 1e-30)
  }
}
