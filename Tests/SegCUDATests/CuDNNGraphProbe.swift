import Foundation
import Testing

@testable import SegCUDA

// MARK: - The probe's request and answer

/// What the parent asks the probe process: the graphs to build and the devices to plan them for.
struct PlanProbeRequest: Codable {
  var devices: [String]
  var keys: [ConvGraphKey]
}

/// What the probe process answers: each graph's plans, and the message of a deliberate mistake.
struct PlanProbeAnswer: Codable {
  var results: [PlanProbeResult]
  /// The error of setting a tensor's dimensions as a float (which cuDNN refuses).
  var wrongAttributeError: String?
}

/// What the probe process found for one graph on one device.
struct PlanProbeResult: Codable {
  var device: String
  var key: ConvGraphKey
  var configurations: Int
  var plans: Int
  var rejected: Int
  var failed: Int
  /// The most workspace a plan asked for, in bytes.
  var maxWorkspace: Int
  /// Whether the first plan, saved as JSON, loaded and finalized again.
  var reloaded: Bool
  /// Why the graph could not be built, if it could not.
  var error: String?
}

// MARK: - Where the probe runs

/// cuDNN's graph API is probed in a child process (this test program again, running only
/// `CuDNNGraphProbeChild`): libcudnn aborts its process when a companion library is missing, and
/// its runtime-compiled engines link against libcuda.so.1, which a machine without a GPU lacks, so
/// the child gets a stub libcuda.so.1 (every call answers "no device") that must not shadow the real
/// driver in this process.
enum CuDNNGraphProbe {
  static let requestVariable = "UNET_CUDNN_PROBE_REQUEST"
  static let resultVariable = "UNET_CUDNN_PROBE_RESULT"

  /// The folders the loader searches, in its order.
  static let folders: [String] = {
    guard let options = try? CUDATestEnvironment.options.get() else { return [] }
    let s = options.librarySearch
    return s.cudaPathFolders + s.systemFolders + s.pythonFolders()
  }()

  /// The first folder with cuDNN's engines and heuristics (the full nvidia-cudnn-cu13 wheel; the
  /// JIT-only wheel has neither).
  static let cudnnFolder = folders.first { f in
    ["libcudnn.so.9", "libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9", "libcudnn_heuristic.so.9"]
      .allSatisfy { FileManager.default.fileExists(atPath: "\(f)/\($0)") }
  }

  /// The first folder with cuBLASLt, which libcudnn loads (and aborts without).
  static let cublasFolder = folders.first { f in
    CUDALibrary.cublasLt.sonames.contains { FileManager.default.fileExists(atPath: "\(f)/\($0)") }
  }

  /// Why the probe cannot run here, or nil when it can.
  static let missing: String? = {
    if CUDAHeaders.compiler == nil { return "no C compiler (cc, gcc or clang) on PATH to build the stub libcuda.so.1 the cuDNN plan probe needs" }
    if cudnnFolder == nil {
      return "cuDNN with its engines and heuristics (libcudnn_engines_precompiled.so.9, libcudnn_heuristic.so.9) not found: "
        + "run `bash scripts/setup.sh --tests` (pip package nvidia-cudnn-cu13) or set UNET_CUDA_PATH to its lib folder"
    }
    if cublasFolder == nil { return "libcublasLt not found (libcudnn aborts without it): pip package nvidia-cublas" }
    return nil
  }()

  /// The driver calls the runtime-compiled engines import or look up; each answers
  /// CUDA_ERROR_NO_DEVICE (100).
  static let stubSymbols = [
    "cuModuleGetFunction", "cuModuleLoadData", "cuModuleUnload", "cuTensorMapEncodeIm2col", "cuTensorMapEncodeTiled",
    "cuLinkCreate", "cuLinkAddData", "cuLinkComplete", "cuLinkDestroy", "cuLaunchKernel", "cuLaunchCooperativeKernel",
    "cuLaunchKernelEx", "cuDeviceGetCount", "cuDeviceGet", "cuLibraryLoadData", "cuLibraryLoadFromFile",
    "cuLibraryGetKernel", "cuLibraryUnload", "cuKernelSetAttribute", "cuKernelGetAttribute", "cuKernelGetFunction",
    "cuOccupancyMaxPotentialClusterSize", "cuInit", "cuDriverGetVersion", "cuGetProcAddress",
  ]

  /// Builds the stub libcuda.so.1 in `folder`.
  static func buildStub(in folder: URL) throws {
    var source = "/* A stand-in for the CUDA driver: there is no GPU here. */\n"
    source += "int cuGetErrorString(int e, const char **s) { static const char m[] = \"no CUDA device (test stub)\"; if (s) *s = m; return 0; }\n"
    for name in stubSymbols { source += "int \(name)(void) { return 100; }\n" }
    let c = folder.appendingPathComponent("stub.c")
    try source.write(to: c, atomically: true, encoding: .utf8)
    let p = try start {
      let p = Process()
      p.executableURL = URL(fileURLWithPath: CUDAHeaders.compiler!)
      p.arguments = ["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", folder.appendingPathComponent("libcuda.so.1").path, c.path]
      return p
    }
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CUDAError(.compileFailed, "the C compiler could not build the stub libcuda.so.1") }
  }

  /// Starts the process `make` sets up, again (a new one) after a pause when the system is briefly
  /// out of processes (EAGAIN), as a machine shared by parallel builds sometimes is.
  static func start(_ make: () -> Process) throws -> Process {
    for attempt in 1... {
      let p = make()
      do {
        try p.run()
        return p
      } catch let e as NSError where attempt < 4 && (e.userInfo[NSUnderlyingErrorKey] as? NSError)?.code == Int(EAGAIN) {
        Thread.sleep(forTimeInterval: Double(attempt))
      }
    }
    fatalError("unreachable: the last attempt's error is thrown")
  }

  /// Runs `request` in a child process and returns its results; an error carries the child's output.
  static func run(_ request: PlanProbeRequest) throws -> PlanProbeAnswer {
    let dir = try temporaryFolder("cudnn-probe")
    defer { try? FileManager.default.removeItem(at: dir) }
    try buildStub(in: dir)
    let requestFile = dir.appendingPathComponent("request.json"), resultFile = dir.appendingPathComponent("result.json")
    try JSONEncoder().encode(request).write(to: requestFile)

    var env = ProcessInfo.processInfo.environment
    env[requestVariable] = requestFile.path
    env[resultVariable] = resultFile.path
    env["UNET_CUDA_PATH"] = cudnnFolder!
    env["LD_LIBRARY_PATH"] = ([dir.path, cudnnFolder!, cublasFolder!] + (env["LD_LIBRARY_PATH"].map { [$0] } ?? [])).joined(separator: ":")
    let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    let log = dir.appendingPathComponent("child.log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    let p = try start {
      let p = Process()
      p.executableURL = exe
      p.arguments = ["--testing-library", "swift-testing", "--filter", "CuDNNGraphProbeChild"]
      p.environment = env
      p.standardOutput = handle
      p.standardError = handle
      return p
    }
    p.waitUntilExit()
    try handle.close()
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    guard p.terminationReason == .exit, p.terminationStatus == 0, let data = try? Data(contentsOf: resultFile) else {
      throw CUDAError(
        .callFailed,
        "the cuDNN probe process ended with \(p.terminationReason == .exit ? "status" : "signal") \(p.terminationStatus):\n"
          + output.suffix(4000))
    }
    return try JSONDecoder().decode(PlanProbeAnswer.self, from: data)
  }
}

// MARK: - The child's half

/// Runs only in the probe process that `CuDNNGraphProbe.run` starts: loads cuDNN through the
/// repository's loader, builds each requested graph and finalizes its plans for each device.
@Suite struct CuDNNGraphProbeChild {
  static let request = ProcessInfo.processInfo.environment[CuDNNGraphProbe.requestVariable]

  @Test(.enabled(if: request != nil, "the cuDNN plan probe's child half runs only in the process CuDNNGraphPlanTests starts"))
  func probe() throws {
    let request = try JSONDecoder().decode(PlanProbeRequest.self, from: Data(contentsOf: URL(fileURLWithPath: Self.request!)))
    let loader = CUDALoader(options: try CUDATestEnvironment.options.get())
    let api = try CUDNNGraphAPI.load(try CUDNNAPI.load(loader))
    let filter = PlanFilter(tensorFloat32: true, deterministic: false, maxWorkspaceBytes: CUDNNGraphConvolutions.defaultMaxWorkspaceBytes)
    let finder = PlanFinder(api: api, filter: filter)
    var results: [PlanProbeResult] = []
    for json in request.devices {
      let description = try CuDNNDeviceDescription(json: json)
      let device = try description.descriptor(api)
      for key in request.keys {
        var r = PlanProbeResult(
          device: description.cacheName, key: key, configurations: 0, plans: 0, rejected: 0, failed: 0, maxWorkspace: 0, reloaded: false)
        do {
          let graph = try ConvGraphBuilder(api: api).graph(key)
          let found = try finder.plans(key, graph: graph, target: .device(device), device: device)
          (r.configurations, r.plans, r.rejected, r.failed) = (found.configurations, found.plans.count, found.rejected, found.failed)
          r.maxWorkspace = found.plans.map(\.workspaceBytes).max() ?? 0
          if let first = found.plans.first {
            r.reloaded = try finder.load(json: first.json, .device(device)) != nil
          }
        } catch {
          r.error = "\(error)"
        }
        results.append(r)
      }
    }
    var wrong: String? = nil
    do { try BackendDescriptor(.tensor, api: api).set(.tensorDimensions, float: 1) } catch { wrong = "\(error)" }
    try JSONEncoder().encode(PlanProbeAnswer(results: results, wrongAttributeError: wrong)).write(to: URL(fileURLWithPath: ProcessInfo.processInfo.environment[CuDNNGraphProbe.resultVariable]!))
  }
}
