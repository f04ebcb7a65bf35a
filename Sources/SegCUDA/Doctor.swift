import Foundation

// MARK: - Report

/// What `unet doctor` found: each CUDA component, found or not (and how to fix it), and whether
/// this machine can run the CUDA backend. Collecting it never throws.
public struct DoctorReport: Sendable {
  /// One line of the report.
  public struct Item: Sendable {
    public enum State: String, Sendable { case ok, missing, failed, skipped, warning }
    public let component: String
    public let state: State
    public let detail: String
  }

  public private(set) var items: [Item] = []
  /// The devices found (empty without a driver).
  public private(set) var devices: [CUDADeviceInfo] = []
  /// True when a GPU, the driver, NVRTC and cuDNN work together and a kernel ran correctly.
  public private(set) var usable = false
  /// cuDNN's JSON description of the first GPU (`CuDNNDeviceDescription`), from which plans for
  /// that GPU can be built on a machine without one; nil without a GPU or a cuDNN that makes one.
  public private(set) var cudnnDevice: String?

  mutating func add(_ component: String, _ state: Item.State, _ detail: String) {
    items.append(Item(component: component, state: state, detail: detail))
  }

  /// The report as text, one component per line, with a verdict at the end.
  public var text: String {
    var lines = ["CUDA:"]
    for item in items {
      let label = item.component.padding(toLength: 9, withPad: " ", startingAt: 0)
      lines.append("  \(label) \(item.state.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(item.detail)")
    }
    if usable {
      lines.append("Ready: --device cuda will run on \(devices.first.map { "\($0.name) (\($0.architecture))" } ?? "the GPU").")
    } else {
      let blocking = items.first { $0.state == .missing || $0.state == .failed }
      let reason = blocking.map { "\($0.component) \($0.state.rawValue)" } ?? "no GPU found"
      lines.append("Not usable (\(reason)): --device cuda is unavailable here.")
    }
    return lines.joined(separator: "\n")
  }

  // MARK: - Collecting

  /// Looks for each component where `options` says (UNET_CUDA_PATH first), through `loader` if
  /// given; with a GPU, compiles the kernels for it (cached where `options` says) and runs one,
  /// checking the result.
  public static func collect(options: CUDAOptions, loader: CUDALoader? = nil) -> DoctorReport {
    let loader = loader ?? CUDALoader(options: options)
    var r = DoctorReport()
    var driver: CUDADriver? = nil
    do {
      let d = try CUDADriver(loader: loader)
      driver = d
      r.add("driver", .ok, "CUDA \(d.versionString) (\(d.api.library?.path ?? "libcuda.so.1"))")
    } catch {
      r.add("driver", .missing, "\(error)")
    }
    if let driver {
      do {
        let n = try driver.deviceCount()
        r.devices = try (0..<n).map { try driver.device($0) }
        if n == 0 {
          r.add("GPU", .missing, "the driver sees no CUDA device: check `nvidia-smi` and CUDA_VISIBLE_DEVICES")
        }
        for d in r.devices {
          let gib = String(format: "%.1f", Double(d.totalMemory) / 1_073_741_824)
          r.add(
            "GPU \(d.ordinal)", .ok,
            "\(d.name), compute capability \(d.computeCapability.major).\(d.computeCapability.minor) "
              + "(\(d.architecture)), \(gib) GiB, \(d.multiprocessors) SMs")
        }
      } catch {
        r.add("GPU", .failed, "\(error)")
      }
    } else {
      r.add("GPU", .skipped, "needs the driver")
    }

    var compiler: NVRTCCompiler? = nil
    do {
      let api = try NVRTCAPI.load(loader)
      let c = try NVRTCCompiler(api: api, options: options)
      compiler = c
      let archs = c.supportedArchitectures
      r.add(
        "NVRTC", .ok,
        "\(c.version.major).\(c.version.minor) (\(api.library?.path ?? "libnvrtc")), "
          + "sm_\(archs.min() ?? 0) to sm_\(archs.max() ?? 0)")
    } catch {
      r.add("NVRTC", .missing, "\(error)")
    }

    do {
      let api = try CUBLASAPI.load(loader)
      r.add("cuBLAS", .ok, "\(libraryVersion(api.ltVersion())) (\(api.library?.path ?? "libcublas"))")
    } catch {
      // Only the ceiling measurement of `doctor --check` uses cuBLAS.
      r.add("cuBLAS", .warning, "\(error)")
    }

    var cudnn: CUDNNAPI? = nil
    do {
      let api = try CUDNNAPI.load(loader)
      cudnn = api
      r.add("cuDNN", .ok, "\(libraryVersion(api.version())) (\(api.library?.path ?? "libcudnn"))")
    } catch {
      r.add("cuDNN", .missing, "\(error)")
    }

    guard let driver, let device = r.devices.first, let compiler, let cudnn else {
      if let compiler { r.add("kernels", .skipped, Self.compileProbe(compiler)) }
      return r
    }
    r.usable = r.smokeTest(driver: driver, device: device, compiler: compiler, cudnn: cudnn)
    return r
  }

  /// Without a GPU: whether NVRTC compiles a kernel at all (kept out of the disk cache).
  static func compileProbe(_ compiler: NVRTCCompiler) -> String {
    do {
      let probe = try NVRTCCompiler(api: compiler.api, cacheDirectory: nil)
      _ = try probe.compile(
        "extern \"C\" __global__ void probe(float* x) { x[0] = 1.0f; }\n", name: "probe.cu", architecture: 80)
      return "no GPU to run them on; NVRTC compiles for sm_80"
    } catch {
      return "no GPU to run them on; NVRTC cannot compile: \(error)"
    }
  }

  /// On the GPU: compiles every kernel family for it, loads every kernel, runs a broadcast add and
  /// checks the result exactly, and opens a cuDNN handle.
  mutating func smokeTest(driver: CUDADriver, device: CUDADeviceInfo, compiler: NVRTCCompiler, cudnn: CUDNNAPI) -> Bool {
    do {
      let context = try CUDAContext(driver: driver, ordinal: device.ordinal)
      guard let (arch, ptx) = compiler.target(computeCapability: device.computeCapability.major, device.computeCapability.minor)
      else {
        add("kernels", .failed, "NVRTC \(compiler.version.major).\(compiler.version.minor) cannot compile for \(device.architecture)")
        return false
      }
      let start = Date()
      var modules: [String: CUDAModule] = [:]
      for f in KernelLibrary.families {
        let code = try compiler.compile(f.source, name: "\(f.name).cu", architecture: arch, ptx: ptx)
        let module = try context.loadModule(code, name: f.name)
        for k in f.kernels { _ = try context.function(k, in: module) }
        modules[f.name] = module
      }
      let seconds = String(format: "%.1f", Date().timeIntervalSince(start))
      let count = KernelLibrary.families.reduce(0) { $0 + $1.kernels.count }
      add("kernels", .ok, "\(count) kernels in \(modules.count) modules for \(ptx ? "compute" : "sm")_\(arch) (\(seconds) s)")

      // a [4, 3] + b [3] (broadcast along the rows), computed the same way on both sides.
      let a: [Float] = (0..<12).map { Float($0) * 0.5 - 2 }, b: [Float] = [0.25, -1, 3]
      let expected = (0..<12).map { a[$0] + b[$0 % 3] }
      let (pa, pb, pc) = (try context.allocate(48), try context.allocate(12), try context.allocate(48))
      defer { [pa, pb, pc].forEach { context.free($0) } }
      try a.withUnsafeBytes { try context.upload($0, to: pa) }
      try b.withUnsafeBytes { try context.upload($0, to: pb) }
      let add = try context.function("add_f32", in: modules["elementwise"]!)
      try context.launch(
        add, name: "add_f32", blocks: 1, threads: 128,
        arguments: [.pointer(pa), .pointer(pb), .pointer(pc), .int64(12), .dims([4, 3]), .vec([3, 1]), .vec([0, 1])])
      var result = [Float](repeating: .nan, count: 12)
      try result.withUnsafeMutableBytes { try context.download(pc, into: $0) }
      guard result == expected else {
        self.add("run", .failed, "add_f32 computed \(result), expected \(expected)")
        return false
      }
      self.add("run", .ok, "a broadcast add on the GPU matches the CPU exactly")

      var handle: UnsafeMutableRawPointer? = nil
      try context.current { try cudnn.check(cudnn.cudnnCreate(&handle), "cudnnCreate") }
      _ = cudnn.cudnnDestroy(handle)
      self.add("cuDNN run", .ok, "a cuDNN handle opens on \(device.architecture)")
      describeForGraphs(cudnn, ordinal: device.ordinal, context: context)
      return true
    } catch {
      add("run", .failed, "\(error)")
      return false
    }
  }

  /// Records cuDNN's description of the GPU for the graph API's plans (a warning when this cuDNN
  /// cannot give one: only the graph API's plan cache names the device less precisely then).
  mutating func describeForGraphs(_ cudnn: CUDNNAPI, ordinal: Int, context: CUDAContext) {
    do {
      let graph = try CUDNNGraphAPI.load(cudnn)
      let d = try context.current { try CuDNNDeviceDescription.current(ordinal: ordinal, api: graph) }
      cudnnDevice = d.json
      add("cuDNN graph", .ok, "cuDNN describes the GPU as \(d.cacheName) for its graph API's plans")
    } catch {
      add("cuDNN graph", .warning, "cuDNN gives no device description for its graph API: \(error)")
    }
  }

  /// "9.6.0" for cuDNN's 90600 or cuBLAS's 120604 -> "12.6.4" (major * 10000 + minor * 100 + patch).
  static func libraryVersion(_ v: Int) -> String { "\(v / 10000).\(v / 100 % 100).\(v % 100)" }
}
