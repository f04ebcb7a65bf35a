import Foundation
import Testing

@testable import SegCUDA

// MARK: - CUPTI's declarations and record layouts against cupti.h

@Suite struct CUPTIHeaderTests {
  /// cupti.h includes cuda.h: both from one set of folders (pip's nvidia-cuda-cupti beside nvidia-cuda-runtime).
  static let roots = CUDAHeaders.roots(with: ["cupti.h", "cupti_activity_deprecated.h", "cuda.h"])
  static let missing = CUDAHeaders.missing("cupti.h", roots: roots, package: "nvidia-cuda-cupti")

  static func table() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try CUPTIAPI(r, library: nil)
    return r.entries
  }

  /// The ten calls the profiler makes, each typedef'd in ccuda_cupti.h.
  @Test func theTableIsComplete() throws {
    #expect(try Self.table().map(\.api) == [
      "cuptiGetVersion", "cuptiGetResultString", "cuptiGetTimestamp", "cuptiActivityEnable", "cuptiActivityDisable",
      "cuptiActivityRegisterCallbacks", "cuptiActivityGetNextRecord", "cuptiActivityFlushAll",
      "cuptiActivityPushExternalCorrelationId", "cuptiActivityPopExternalCorrelationId",
    ])
  }

  /// Our typedefs, constants, result names and every record offset we read (ccuda_cupti.h's static
  /// asserts: CUpti_ActivityKernel13, Memcpy7, Memset5, ExternalCorrelation, API) agree with cupti.h.
  @Test(.enabled(if: missing == nil, Comment(rawValue: missing ?? "")))
  func declarationsAndOffsetsMatchCuptiH() throws {
    try HeaderCheck(
      includes: ["stddef.h", "cupti.h"], define: "CCUDA_CHECK_CUPTI", ourHeader: "ccuda_cupti.h", table: try Self.table(),
      statuses: CUPTIAPI.statuses
    ).run(roots: Self.roots)
  }

  /// CUDA 12's records (CUpti_ActivityKernel9 to 12, Memcpy5, Memset4) have the fields we read at
  /// the same offsets, so a libcupti.so.12 is read correctly too.
  @Test(.enabled(if: missing == nil, Comment(rawValue: missing ?? "")))
  func cuda12RecordsShareTheOffsets() throws {
    var source = "#include <stddef.h>\n#include <cupti.h>\n#include <cupti_activity_deprecated.h>\n#include \"ccuda_cupti.h\"\n"
    let kernelFields = [
      ("start", "START"), ("end", "END"), ("streamId", "STREAM_ID"), ("gridX", "GRID_X"), ("gridY", "GRID_Y"), ("gridZ", "GRID_Z"),
      ("blockX", "BLOCK_X"), ("blockY", "BLOCK_Y"), ("blockZ", "BLOCK_Z"), ("correlationId", "CORRELATION_ID"), ("name", "NAME"),
    ]
    for version in 9...12 {
      for (field, macro) in kernelFields {
        source += "_Static_assert(offsetof(CUpti_ActivityKernel\(version), \(field)) == CCUDA_CUPTI_KERNEL_\(macro), \"Kernel\(version).\(field)\");\n"
      }
    }
    for (field, macro) in [("bytes", "BYTES"), ("start", "START"), ("end", "END"), ("streamId", "STREAM_ID"), ("correlationId", "CORRELATION_ID")] {
      source += "_Static_assert(offsetof(CUpti_ActivityMemcpy5, \(field)) == CCUDA_CUPTI_MEMCPY_\(macro), \"Memcpy5\");\n"
      source += "_Static_assert(offsetof(CUpti_ActivityMemset4, \(field)) == CCUDA_CUPTI_MEMSET_\(macro), \"Memset4\");\n"
    }
    for root in Self.roots {
      let flags = (root + [CUDATestEnvironment.headerFolder.path]).map { "-I\($0)" }
      let result = try CUDAHeaders.run(CUDAHeaders.strictFlags + ["-fsyntax-only"] + flags, source: source)
      #expect(result.status == 0, "CUDA 12's records moved a field we read:\n\(result.output.prefix(3000))")
    }
  }

  /// The offset check can fail: the kernel record's end where its start is, is rejected.
  @Test(.enabled(if: missing == nil, Comment(rawValue: missing ?? "")))
  func aWrongOffsetIsCaught() throws {
    let source = "#include <stddef.h>\n#include <cupti.h>\n_Static_assert(offsetof(CUpti_ActivityKernel13, end) == 16, \"end at 16\");\n"
    let flags = Self.roots[0].map { "-I\($0)" }
    let result = try CUDAHeaders.run(CUDAHeaders.strictFlags + ["-fsyntax-only"] + flags, source: source)
    #expect(result.status != 0, "a wrong offset compiled")
  }
}

// MARK: - Finding libcupti

@Suite struct CUPTILoaderTests {
  /// The libcupti in a pip wheel's lib folder (nvidia/cu13/lib, or CUDA 12's nvidia/cuda_cupti/lib), if any.
  static let wheelLibrary: String? = {
    let folders = PythonPackages.nvidiaLibraryFolders(interpreters: (try? CUDATestEnvironment.options.get().pythons) ?? [])
    for folder in folders {
      for soname in CUDALibrary.cupti.sonames where FileManager.default.fileExists(atPath: "\(folder)/\(soname)") {
        return "\(folder)/\(soname)"
      }
    }
    return nil
  }()

  /// The loader finds the wheel's libcupti through python3's site-packages, and every entry point
  /// the profiler calls is in it (its version needs the driver, so it is not asked here).
  @Test(.enabled(if: wheelLibrary != nil, "no libcupti in pip's nvidia packages: run `bash scripts/setup.sh --tests` (pip package nvidia-cuda-cupti)"))
  func libcuptiIsFoundInTheWheel() throws {
    let search = LibrarySearch(cudaPath: nil, useLoaderPath: false, systemFolders: [], pythonFolders: {
      PythonPackages.nvidiaLibraryFolders(interpreters: (try? CUDATestEnvironment.options.get().pythons) ?? [])
    })
    let loader = CUDALoader(search: search)
    let lib = try loader.library(.cupti)
    #expect(lib.path == Self.wheelLibrary, "\(lib.path)")
    #expect(lib.soname.hasPrefix("libcupti.so."))
    let api = try CUPTIAPI.load(loader)
    #expect(api.library?.path == lib.path)
  }

  /// Without libcupti the error names it, where it was looked for and how to install it (what the
  /// profile's header then quotes).
  @Test func aMissingLibcuptiIsExplained() throws {
    let empty = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: empty) }
    let loader = CUDALoader(search: LibrarySearch(cudaPath: empty.path, useLoaderPath: false, systemFolders: [], pythonFolders: { [] }))
    do {
      _ = try CUPTIAPI.load(loader)
      Issue.record("found libcupti in an empty folder")
    } catch let e as CUDAError {
      #expect(e.kind == .libraryNotFound)
      #expect(e.message.contains("libcupti.so.13") && e.message.contains("pip install nvidia-cuda-cupti"), "\(e.message)")
    }
  }
}
