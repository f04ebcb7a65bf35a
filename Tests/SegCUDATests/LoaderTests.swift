import CCUDA
import Foundation
import Testing

@testable import SegCUDA

// MARK: - Finding libraries

@Suite struct LoaderTests {
  /// With UNET_CUDA_PATH at an empty folder and nothing elsewhere, the error names the library,
  /// every place searched, and how to install it; nothing crashes.
  @Test func missingDriverGivesAClearError() throws {
    let empty = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: empty) }
    let loader = CUDALoader(
      search: LibrarySearch(cudaPath: empty.path, useLoaderPath: false, systemFolders: [empty.path + "/nowhere"],
        pythonFolders: { [] }))
    do {
      _ = try loader.library(.driver)
      Issue.record("found a driver in an empty folder")
    } catch let e as CUDAError {
      #expect(e.kind == .libraryNotFound)
      #expect(e.message.contains("the CUDA driver (libcuda.so.1) was not found"))
      #expect(e.message.contains("UNET_CUDA_PATH (\(empty.path))"))
      #expect(e.message.contains("\(empty.path)/nowhere"))
      #expect(e.message.contains("NVIDIA driver"), "says how to install: \(e.message)")
    }
    // The failure is remembered, and DriverAPI / CUDADriver report the same error.
    #expect(throws: CUDAError.self) { try DriverAPI.load(loader) }
    #expect(throws: CUDAError.self) { try CUDADriver(loader: loader) }
  }

  /// The search UNET_CUDA_PATH asks for (an empty folder, then the loader's path, the
  /// system folders and pip's packages): on a machine without a driver, a clear error.
  @Test func environmentSearchWithoutDriver() throws {
    let empty = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: empty) }
    let search = try CUDAOptions(environment: ["UNET_CUDA_PATH": empty.path]).librarySearch
    do {
      let lib = try CUDALoader(search: search).library(.driver)
      #expect(lib.path.hasSuffix("libcuda.so.1") || lib.path.contains("libcuda"), "a real driver: \(lib.path)")
    } catch let e as CUDAError {
      #expect(e.kind == .libraryNotFound)
      #expect(e.message.contains("the dynamic loader's path"))
      #expect(e.message.contains("/usr/local/cuda/lib64"))
      #expect(e.message.contains("site-packages") || e.message.contains("/nvidia/"))
    }
  }

  /// pip's nvidia-cuda-nvrtc is found through python3's site-packages.
  @Test(.enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)))
  func nvrtcIsFoundAndReportsItsVersion() throws {
    let api = try #require(CUDATestEnvironment.nvrtc)
    let lib = try #require(api.library)
    #expect(lib.soname.hasPrefix("libnvrtc.so."))
    #expect(lib.path.hasSuffix(lib.soname) || lib.path.contains("libnvrtc"))
    let v = try api.version()
    #expect(v.major >= 12)
    #expect(lib.soname == "libnvrtc.so.\(v.major)")
  }

  /// UNET_CUDA_PATH comes first, and a file there that is not the library is reported by path.
  @Test func aBrokenFileIsReportedWithItsPath() throws {
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    try Data("not an ELF file".utf8).write(to: dir.appendingPathComponent("libcudnn.so.9"))
    let loader = CUDALoader(
      search: LibrarySearch(cudaPath: dir.path, useLoaderPath: false, systemFolders: [], pythonFolders: { [] }))
    do {
      _ = try loader.library(.cudnn)
      Issue.record("loaded a text file as cuDNN")
    } catch let e as CUDAError {
      #expect(e.kind == .libraryNotFound)
      #expect(e.message.contains("Found but could not load: \(dir.path)/libcudnn.so.9"))
      #expect(e.message.contains("nvidia-cudnn-cu13"))
    }
  }

  /// A real library that lacks the entry points gives an error naming the symbol and the file.
  @Test func aLibraryWithoutTheSymbolsIsRejected() throws {
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
      .first { FileManager.default.fileExists(atPath: $0) }
    let target = try #require(libm, "no libm to stand in for a wrong library")
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    try FileManager.default.createSymbolicLink(
      atPath: dir.appendingPathComponent("libnvrtc.so.12").path, withDestinationPath: target)
    let loader = CUDALoader(
      search: LibrarySearch(cudaPath: dir.path, useLoaderPath: false, systemFolders: [], pythonFolders: { [] }))
    let lib = try loader.library(.nvrtc)
    #expect(lib.soname == "libnvrtc.so.12" && lib.path == "\(dir.path)/libnvrtc.so.12")
    do {
      _ = try NVRTCAPI(lib, library: lib)
      Issue.record("libm passed for NVRTC")
    } catch let e as CUDAError {
      #expect(e.kind == .symbolNotFound)
      #expect(e.message.contains("nvrtcGetErrorString") && e.message.contains(lib.path))
    }
  }

  @Test func cudaPathFoldersIncludeLib64() {
    let s = LibrarySearch(cudaPath: "/opt/cuda:/x", pythonFolders: { [] })
    #expect(s.cudaPathFolders == ["/opt/cuda", "/opt/cuda/lib64", "/opt/cuda/lib", "/x", "/x/lib64", "/x/lib"])
    #expect(LibrarySearch.defaultSystemFolders().first == "/usr/local/cuda/lib64")
  }
}

// MARK: - Status strings

/// A driver whose only working calls are the two error-string functions, to test the messages.
private struct FakeDriverSymbols: SymbolSource {
  let knowsNames: Bool
  func load<F>(_ api: String, symbols: [String]) throws -> F {
    let name: ccuda_cuGetErrorName_fn = { status, p in
      guard status == 2 else { return 1 }
      p?.pointee = UnsafePointer(strdup("CUDA_ERROR_OUT_OF_MEMORY"))
      return 0
    }
    let string: ccuda_cuGetErrorString_fn = { status, p in
      guard status == 2 else { return 1 }
      p?.pointee = UnsafePointer(strdup("out of memory"))
      return 0
    }
    let refuse: ccuda_cuGetErrorName_fn = { _, _ in 1 }
    switch api {
    case "cuGetErrorName": return unsafeBitCast(knowsNames ? name : refuse, to: F.self)
    case "cuGetErrorString": return unsafeBitCast(knowsNames ? string : refuse, to: F.self)
    default: return unsafeBitCast(UnsafeMutableRawPointer(bitPattern: 0x10)!, to: F.self)
    }
  }
}

@Suite struct StatusTests {
  @Test func driverStatusNamesTheCallAndTheStatus() throws {
    let api = try DriverAPI(FakeDriverSymbols(knowsNames: true), library: nil)
    #expect(throws: Never.self) { try api.check(0, "cuInit") }
    do {
      try api.check(2, "cuMemAlloc(64 bytes)")
      Issue.record("status 2 passed")
    } catch let e as CUDAError {
      #expect(e.kind == .callFailed)
      #expect(e.message == "cuMemAlloc(64 bytes) failed with CUDA_ERROR_OUT_OF_MEMORY (2): out of memory")
    }
  }

  /// Without the driver's strings, our table names the status; unknown codes print as numbers.
  @Test func driverStatusFallsBackToOurTable() throws {
    let api = try DriverAPI(FakeDriverSymbols(knowsNames: false), library: nil)
    #expect(throws: CUDAError.self) { try api.check(100, "cuDeviceGetCount") }
    #expect(api.statusName(100) == "CUDA_ERROR_NO_DEVICE")
    #expect(api.statusName(34) == "CUDA_ERROR_STUB_LIBRARY")
    #expect(api.statusName(123_456) == "CUresult")
    #expect(
      CUDAError.call("cuX", status: 123_456, name: api.statusName(123_456), detail: nil).message
        == "cuX failed with CUresult (123456)")
  }

  /// NVRTC's own strings agree with our table, and its errors name the call.
  @Test(.enabled(if: CUDATestEnvironment.nvrtc != nil, Comment(rawValue: CUDATestEnvironment.nvrtcMissing)))
  func nvrtcStatusStrings() throws {
    let api = try #require(CUDATestEnvironment.nvrtc)
    for (code, name) in CUDAStatus.nvrtc { #expect(api.statusName(code) == name) }
    do {
      try api.check(5, "nvrtcCompileProgram(x.cu)")
      Issue.record("status 5 passed")
    } catch let e as CUDAError {
      #expect(e.message == "nvrtcCompileProgram(x.cu) failed with NVRTC_ERROR_INVALID_OPTION (5)")
    }
  }

  @Test func tablesCoverTheCommonFailures() {
    #expect(CUDAStatus.driver[2] == "CUDA_ERROR_OUT_OF_MEMORY")
    #expect(CUDAStatus.driver[209] == "CUDA_ERROR_NO_BINARY_FOR_GPU")
    #expect(CUDAStatus.cublas[13] == "CUBLAS_STATUS_EXECUTION_FAILED")
    #expect(CUDAStatus.cudnn[3000] == "CUDNN_STATUS_NOT_SUPPORTED")
    for table in [CUDAStatus.driver, CUDAStatus.nvrtc, CUDAStatus.cublas, CUDAStatus.cudnn] {
      #expect(table[0]?.hasSuffix("SUCCESS") == true)
      #expect(Set(table.values).count == table.count)
    }
  }

  @Test func aCuDNNOfAnotherMajorVersionIsRefusedWithAFix() throws {
    try CUDNNAPI.checkMajorVersion(91400, path: "/x/libcudnn.so.9")
    for version in [8_09_07, 10_01_00] {
      do {
        try CUDNNAPI.checkMajorVersion(version, path: "/x/libcudnn.so")
        Issue.record("cuDNN \(version) accepted")
      } catch let e as CUDAError {
        #expect(e.kind == .unsupported)
        #expect(e.message.contains("/x/libcudnn.so") && e.message.contains("is not cuDNN 9"))
        #expect(e.message.contains("pip install nvidia-cudnn-cu13"))
      }
    }
  }
}
