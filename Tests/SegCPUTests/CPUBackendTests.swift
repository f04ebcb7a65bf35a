import CDNNL
import Foundation
@testable import SegCPU
import SegCore
import SegTestSupport
import Testing

// MARK: - Transfers and errors of the CPU backend

@Suite struct CPUBackendTests {
  @Test(arguments: DType.allCases) func uploadDownloadRoundTrip(dtype: DType) throws {
    let host = randomHost(TensorType([2, 3, 5], dtype), seed: 4, in: 0..<100)
    let back = try Tensor(host, on: CPUBackend.shared).host()
    #expect(back.type == host.type)
    #expect(back.doubles == host.doubles)
  }

  @Test func blockedResultsDownloadRowMajor() throws {
    // A conv output lives in a oneDNN layout; downloading it gives NHWC values.
    let x = try Tensor(random([1, 4, 4, 3], seed: 1), on: CPUBackend.shared)
    let w = try Tensor(random([1, 1, 3, 8], seed: 2), on: CPUBackend.shared)
    let y = try conv2d(x, w).host()
    let xs = try x.floats(), ws = try w.floats()
    var expected = [Float](repeating: 0, count: 16 * 8)
    for p in 0..<16 {
      for o in 0..<8 {
        for c in 0..<3 { expected[p * 8 + o] += xs[p * 3 + c] * ws[c * 8 + o] }
      }
    }
    expectClose(y, try HostTensor(shape: [1, 4, 4, 8], floats: expected), "1x1 conv")
  }

  @Test func foreignBuffersAreRejected() throws {
    let ref = try Tensor(shape: [2], floats: [1, 2], on: ReferenceBackend.shared)
    #expect { try CPUBackend.shared.download(ref.node.storage, type: ref.type) } throws: {
      "\($0)".contains("does not belong to the cpu backend")
    }
  }

  @Test func oneDNNFailuresNameTheCall() throws {
    let failure = DNNLFailure(call: "dnnl_convolution_forward_desc_init", status: dnnl_unimplemented)
    #expect { try withDNNLErrors(op: "conv2d", [TensorType([1], .f32)]) { throw failure } } throws: {
      "\($0)".hasPrefix("conv2d: f32[1]: oneDNN dnnl_convolution_forward_desc_init returned dnnl_unimplemented")
    }
  }
}
