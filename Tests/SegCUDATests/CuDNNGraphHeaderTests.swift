import Foundation
import Testing

@testable import SegCUDA

// MARK: - The graph API's declarations against cudnn.h

@Suite struct CuDNNGraphHeaderTests {
  /// What the graph API's table loads (the legacy table it sits on is recorded apart).
  static func table() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try CUDNNGraphAPI(r, base: CUDNNAPI(SymbolRecorder(), library: nil))
    return r.entries
  }

  /// The six backend entry points, each typedef'd in ccuda_cudnn.h.
  @Test func theTableIsComplete() throws {
    #expect(try Self.table().map(\.api) == [
      "cudnnBackendCreateDescriptor", "cudnnBackendDestroyDescriptor", "cudnnBackendFinalize", "cudnnBackendSetAttribute",
      "cudnnBackendGetAttribute", "cudnnBackendExecute",
    ])
  }

  /// Our typedefs of the backend entry points and every enum value of ccuda_cudnn_graph.h (its
  /// static asserts) agree with NVIDIA's cudnn.h.
  @Test(.enabled(if: HeaderCheckTests.cudnnMissing == nil, Comment(rawValue: HeaderCheckTests.cudnnMissing ?? "")))
  func graphDeclarationsMatchCudnnH() throws {
    try HeaderCheck(
      includes: ["cudnn.h"], define: "CCUDA_CHECK_CUDNN", ourHeader: "ccuda_cudnn.h", table: try Self.table(),
      statuses: CUDAStatus.cudnn
    ).run(roots: HeaderCheckTests.cudnnRoots)
  }
}
