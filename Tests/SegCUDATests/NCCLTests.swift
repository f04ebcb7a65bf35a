import CCUDA
import Foundation
import Testing

@testable import SegCUDA

// MARK: - NCCL without a GPU

/// NCCL from pip's nvidia-nccl-cu13, found like the other CUDA libraries (it reports its version
/// without a GPU), or nil.
enum NCCLTestEnvironment {
  static let api: NCCLAPI? = try? NCCLAPI.load(CUDALoader(options: CUDATestEnvironment.options.get()))
  static let missing = "libnccl.so.2 not found: run `bash scripts/setup.sh --tests` (pip package nvidia-nccl-cu13) to run the NCCL loading test"
}

@Suite struct NCCLTests {
  /// Three ranks agree on rank 0's id: only rank 0 makes one, and every rank gets its bytes
  /// through the broadcast (a fake that hands rank 0's buffer to the others).
  @Test func rankZerosUniqueIDReachesEveryRank() throws {
    var sent: [UInt8]? = nil
    var made = 0
    let id = (0..<NCCLUniqueID.bytes).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 1) }
    var received: [[UInt8]] = []
    for rank in 0..<3 {
      let got = try NCCLUniqueID.agree(rank: rank, make: { made += 1; return id }) { own in
        if rank == 0 { sent = own }
        #expect(rank == 0 || own == [UInt8](repeating: 0, count: NCCLUniqueID.bytes), "rank \(rank) sends no id of its own")
        return sent!
      }
      received.append(got)
    }
    #expect(made == 1, "only rank 0 asks NCCL for an id")
    #expect(received.allSatisfy { $0 == id })
    #expect(NCCLUniqueID.bytes == 128)
  }

  /// An id of the wrong size, or a broadcast that brings nothing, is an error naming the rank.
  @Test func aBrokenIDIsRefused() throws {
    #expect(throws: CUDAError.self) { try NCCLUniqueID.agree(rank: 0, make: { [1, 2, 3] }, broadcast: { $0 }) }
    do {
      _ = try NCCLUniqueID.agree(rank: 2, make: { Issue.record("rank 2 made an id"); return [] }, broadcast: { $0 })
      Issue.record("rank 2 accepted an id of zeros")
    } catch let e as CUDAError {
      #expect(e.message.contains("rank 2"), "\(e.message)")
    }
  }

  /// libnccl.so.2 loads from pip's package and reports its version with no GPU; every entry point
  /// the table names is exported.
  @Test(.enabled(if: NCCLTestEnvironment.api != nil, Comment(rawValue: NCCLTestEnvironment.missing)))
  func ncclIsFoundAndReportsItsVersion() throws {
    let api = try #require(NCCLTestEnvironment.api)
    let lib = try #require(api.library)
    #expect(lib.soname == "libnccl.so.2")
    let v = try api.version()
    #expect(v >= 21800, "NCCL \(v)")
  }

  /// The loader's error for a missing NCCL says how to install it.
  @Test func missingNCCLSaysHowToInstall() throws {
    let empty = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: empty) }
    let loader = CUDALoader(search: LibrarySearch(cudaPath: empty.path, useLoaderPath: false, systemFolders: [], pythonFolders: { [] }))
    do {
      _ = try NCCLAPI.load(loader)
      Issue.record("found NCCL in an empty folder")
    } catch let e as CUDAError {
      #expect(e.kind == .libraryNotFound)
      #expect(e.message.contains("libnccl.so.2") && e.message.contains("nvidia-nccl-cu13"), "\(e.message)")
    }
  }
}
