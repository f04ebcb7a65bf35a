import Foundation
import Testing

@testable import SegCUDA

// MARK: - Recording the symbol tables

/// A symbol source that records what each API table asks for and hands back dummy pointers
/// (never called).
final class SymbolRecorder: SymbolSource {
  var entries: [(api: String, symbols: [String])] = []
  func load<F>(_ api: String, symbols: [String]) throws -> F {
    entries.append((api, symbols))
    return unsafeBitCast(UnsafeMutableRawPointer(bitPattern: 0x10)!, to: F.self)
  }
}

/// What each API table loads.
enum RecordedTables {
  static func driver() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try DriverAPI(r, library: nil)
    return r.entries
  }
  static func nvrtc() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try NVRTCAPI(r, library: nil)
    return r.entries
  }
  static func cublas() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try CUBLASAPI(r, lt: r, library: nil, ltLibrary: nil)
    return r.entries
  }
  static func cudnn() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try CUDNNAPI(r, library: nil)
    return r.entries
  }
  static func nccl() throws -> [(api: String, symbols: [String])] {
    let r = SymbolRecorder()
    _ = try NCCLAPI(r, library: nil)
    return r.entries
  }
}

// MARK: - Real headers

/// Folders holding the real CUDA headers: UNET_CUDA_INCLUDE (folders separated by ':'), the
/// include folders of pip's nvidia-* packages (each site-packages is one set), /usr/local/cuda.
enum CUDAHeaders {
  static let roots: [[String]] = {
    var roots: [[String]] = []
    if let env = ProcessInfo.processInfo.environment["UNET_CUDA_INCLUDE"] {
      roots += env.split(separator: ":").map { [String($0)] }
    }
    for site in PythonPackages.sitePackages(interpreters: PythonPackages.interpreters(environment: ProcessInfo.processInfo.environment)) {
      let nvidia = "\(site)/nvidia"
      let dirs = ((try? FileManager.default.contentsOfDirectory(atPath: nvidia)) ?? []).sorted()
        .map { "\(nvidia)/\($0)/include" }.filter { FileManager.default.fileExists(atPath: $0) }
      if !dirs.isEmpty { roots.append(dirs) }
    }
    roots.append(["/usr/local/cuda/include", "/usr/include"])
    return roots
  }()

  /// Every set of folders that has all of `headers`.
  static func roots(with headers: [String]) -> [[String]] {
    roots.filter { root in
      headers.allSatisfy { h in root.contains { FileManager.default.fileExists(atPath: "\($0)/\(h)") } }
    }
  }

  /// The C compiler: cc, gcc or clang (the Swift toolchain has one) on PATH, if there is one.
  static let compiler: String? = {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    for name in ["cc", "gcc", "clang"] {
      for folder in folders where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
        return "\(folder)/\(name)"
      }
    }
    return nil
  }()

  /// Why a check against `header` (from pip's `package`) cannot run here, or nil when it can.
  static func missing(_ header: String, roots: [[String]], package: String) -> String? {
    if compiler == nil { return "no C compiler (cc, gcc or clang) on PATH to check our declarations against \(header)" }
    if roots.isEmpty { return "\(header) not found: run `bash scripts/setup.sh --tests` (pip package \(package))" }
    return nil
  }

  /// Runs the C compiler on `source`; returns its exit status and output.
  static func run(_ arguments: [String], source: String) throws -> (status: Int32, output: String) {
    let dir = try temporaryFolder("ccuda-check")
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("check.c")
    try source.write(to: file, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: compiler!)
    p.arguments = arguments + [file.path]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
  }

  /// Flags that make a function-pointer type mismatch an error under gcc and clang.
  static var strictFlags: [String] {
    var flags = ["-std=c11", "-Wno-deprecated-declarations", "-Werror=incompatible-pointer-types"]
    if compiler!.hasSuffix("clang") { flags.append("-Werror=incompatible-function-pointer-types") }
    return flags
  }
}

// MARK: - The check

/// One library's check: our typedef of every entry point against the real declaration, the
/// versioned symbol the loader asks for against the one the header maps the name to, and our
/// status names against the header's values.
struct HeaderCheck {
  let includes: [String]
  let define: String
  let ourHeader: String
  let table: [(api: String, symbols: [String])]
  let statuses: [Int32: String]

  /// Runs the check against each set of header folders (e.g. CUDA 12 and 13).
  func run(roots: [[String]]) throws {
    for root in roots { try run(root: root) }
  }

  func run(root: [String]) throws {
    let includeFlags = (root + [CUDATestEnvironment.headerFolder.path]).map { "-I\($0)" }
    let prologue = includes.map { "#include <\($0)>" }.joined(separator: "\n")

    var source = prologue + "\n#define \(define)\n#include \"\(ourHeader)\"\n"
    for (i, e) in table.enumerated() {
      source += "static ccuda_\(e.api)_fn const check_\(i) = &\(e.api);\n"
    }
    for (code, name) in statuses.sorted(by: { $0.key < $1.key }) {
      source += "_Static_assert(\(name) == \(code), \"\(name) is \(code)\");\n"
    }
    let typed = try CUDAHeaders.run(CUDAHeaders.strictFlags + ["-fsyntax-only"] + includeFlags, source: source)
    #expect(typed.status == 0, "our declarations disagree with \(includes) in \(root):\n\(typed.output.prefix(4000))")

    // The symbol each name becomes after the header's macros (cuMemAlloc -> cuMemAlloc_v2).
    let names = prologue + "\n" + table.map { "CCUDA_SYMBOL \($0.api)" }.joined(separator: "\n") + "\n"
    let expanded = try CUDAHeaders.run(["-E", "-P"] + includeFlags, source: names)
    #expect(expanded.status == 0, "the preprocessor failed:\n\(expanded.output.prefix(2000))")
    let symbols = expanded.output.split(separator: "\n").filter { $0.hasPrefix("CCUDA_SYMBOL ") }
      .map { $0.dropFirst("CCUDA_SYMBOL ".count).trimmingCharacters(in: .whitespaces) }
    #expect(symbols.count == table.count)
    for (e, symbol) in zip(table, symbols) {
      #expect(e.symbols.contains(symbol), "the header maps \(e.api) to \(symbol); the loader asks for \(e.symbols)")
    }
  }
}

// MARK: - Tests

@Suite struct HeaderCheckTests {
  static let driverRoots = CUDAHeaders.roots(with: ["cuda.h"])
  static let nvrtcRoots = CUDAHeaders.roots(with: ["nvrtc.h"])
  static let cublasRoots = CUDAHeaders.roots(with: ["cublas_v2.h", "cublasLt.h"])
  static let cudnnRoots = CUDAHeaders.roots(with: ["cudnn.h"])
  static let driverMissing = CUDAHeaders.missing("cuda.h", roots: driverRoots, package: "nvidia-cuda-runtime")
  static let nvrtcMissing = CUDAHeaders.missing("nvrtc.h", roots: nvrtcRoots, package: "nvidia-cuda-nvrtc")
  static let cublasMissing = CUDAHeaders.missing("cublas_v2.h", roots: cublasRoots, package: "nvidia-cublas")
  static let cudnnMissing = CUDAHeaders.missing("cudnn.h", roots: cudnnRoots, package: "nvidia-cudnn-jit-cu13")
  // nccl.h includes cuda_runtime.h: both from one site-packages (nvidia-nccl-cu13 beside nvidia-cuda-runtime).
  static let ncclRoots = CUDAHeaders.roots(with: ["nccl.h", "cuda_runtime.h"])
  static let ncclMissing = CUDAHeaders.missing("nccl.h", roots: ncclRoots, package: "nvidia-nccl-cu13")

  @Test(.enabled(if: driverMissing == nil, Comment(rawValue: driverMissing ?? "")))
  func driverDeclarationsMatchCudaH() throws {
    try HeaderCheck(
      includes: ["cuda.h"], define: "CCUDA_CHECK_DRIVER", ourHeader: "ccuda_driver.h",
      table: try RecordedTables.driver(), statuses: CUDAStatus.driver
    ).run(roots: Self.driverRoots)
  }

  @Test(.enabled(if: nvrtcMissing == nil, Comment(rawValue: nvrtcMissing ?? "")))
  func nvrtcDeclarationsMatchNvrtcH() throws {
    try HeaderCheck(
      includes: ["nvrtc.h"], define: "CCUDA_CHECK_NVRTC", ourHeader: "ccuda_nvrtc.h",
      table: try RecordedTables.nvrtc(), statuses: CUDAStatus.nvrtc
    ).run(roots: Self.nvrtcRoots)
  }

  @Test(.enabled(if: cublasMissing == nil, Comment(rawValue: cublasMissing ?? "")))
  func cublasDeclarationsMatchCublasH() throws {
    try HeaderCheck(
      includes: ["cublas_v2.h", "cublasLt.h"], define: "CCUDA_CHECK_CUBLAS", ourHeader: "ccuda_cublas.h",
      table: try RecordedTables.cublas(), statuses: CUDAStatus.cublas
    ).run(roots: Self.cublasRoots)
  }

  @Test(.enabled(if: cudnnMissing == nil, Comment(rawValue: cudnnMissing ?? "")))
  func cudnnDeclarationsMatchCudnnH() throws {
    try HeaderCheck(
      includes: ["cudnn.h"], define: "CCUDA_CHECK_CUDNN", ourHeader: "ccuda_cudnn.h",
      table: try RecordedTables.cudnn(), statuses: CUDAStatus.cudnn
    ).run(roots: Self.cudnnRoots)
  }

  @Test(.enabled(if: ncclMissing == nil, Comment(rawValue: ncclMissing ?? "")))
  func ncclDeclarationsMatchNcclH() throws {
    try HeaderCheck(
      includes: ["nccl.h"], define: "CCUDA_CHECK_NCCL", ourHeader: "ccuda_nccl.h",
      table: try RecordedTables.nccl(), statuses: CUDAStatus.nccl
    ).run(roots: Self.ncclRoots)
  }

  /// The check can fail: a declaration with one wrong parameter type is rejected.
  @Test(.enabled(if: driverMissing == nil, Comment(rawValue: driverMissing ?? "")))
  func aWrongDeclarationIsCaught() throws {
    let includeFlags = Self.driverRoots[0].map { "-I\($0)" }
    let wrong = """
      #include <cuda.h>
      typedef CUresult (*wrong_fn)(CUdeviceptr *dptr, unsigned int bytesize);
      static wrong_fn const check = &cuMemAlloc;
      """
    let result = try CUDAHeaders.run(CUDAHeaders.strictFlags + ["-fsyntax-only"] + includeFlags, source: wrong)
    #expect(result.status != 0, "a size_t parameter declared as unsigned int compiled")
  }

  /// Every table entry has a typedef named after its API name, in our header, compiled by Swift.
  @Test func tablesAreComplete() throws {
    // 40, cuStreamWaitEvent (NCCL's ordering), then the 7 graph calls of a captured step.
    #expect(try RecordedTables.driver().count == 48)
    #expect(try RecordedTables.nvrtc().count == 13)
    #expect(try RecordedTables.cublas().count == 11)
    #expect(try RecordedTables.cudnn().count == 29)
    #expect(try RecordedTables.nccl().count == 8)
    let versioned = try RecordedTables.driver().filter { $0.symbols != [$0.api] }.map(\.api)
    #expect(versioned.contains("cuMemAlloc") && versioned.contains("cuCtxPopCurrent") && versioned.contains("cuStreamBeginCapture"))
  }
}
