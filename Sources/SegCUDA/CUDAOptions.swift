import Foundation

// MARK: - Settings from the environment

/// The CUDA backend's settings that come from the environment, read once (by the CLI, from the
/// process's environment) and passed to the backend, the library loader and the kernel compiler,
/// so that nothing below reads the environment itself and a test can set them directly.
///
/// - `UNET_CUDA_PATH`: folders (separated by ':') searched first for the CUDA libraries.
/// - `UNET_CUDNN_DETERMINISTIC`: 1 takes the fastest deterministic cuDNN algorithm rather than
///   the fastest (bit-identical reruns, at some cost in speed); 0 or unset, the fastest.
/// - `UNET_CUDNN_GRAPH`: 1 runs convolutions through cuDNN's graph API first (plans timed once per
///   shape, the fastest kept), with the legacy API for shapes it has no plan for; 0 or unset only
///   the legacy API. Off by default until a GPU run has checked the graph path against the CPU
///   (`scripts/device-check.sh` runs both).
/// - `UNET_CUDNN_PLAN_CACHE`: where the graph API's chosen plans are kept between runs (one file
///   per cuDNN version and GPU), or `off`; unset, `$XDG_CACHE_HOME/unetseg/cudnn-plans`, else
///   `$HOME/.cache/unetseg/cudnn-plans`.
/// - `UNET_CUPTI`: 0 makes `--profile` wait after every op instead of reading CUPTI's records
///   (default 1), for a side-by-side of the two modes or where CUPTI misbehaves.
/// - `UNET_CUBIN_CACHE`: where compiled kernels are kept between runs, or `off` for memory only;
///   unset, `$XDG_CACHE_HOME/unetseg/cubin`, else `$HOME/.cache/unetseg/cubin`.
/// - `UNET_PYTHON`, then the package's `.venv`, then `PATH`: the Pythons whose pip nvidia-*
///   packages may hold the libraries (`PythonPackages.interpreters(environment:)`).
public struct CUDAOptions: Sendable, Equatable {
  /// The value of UNET_CUDA_PATH: folders searched before the usual places; nil for none.
  public var cudaPath: String?
  /// Whether convolutions take the fastest deterministic cuDNN algorithm (UNET_CUDNN_DETERMINISTIC=1).
  public var deterministicConvolutions: Bool
  /// Where NVRTC's compiled kernels are kept between runs; nil keeps them in memory only.
  public var kernelCacheDirectory: URL?
  /// Whether convolutions try cuDNN's graph API before the legacy API (UNET_CUDNN_GRAPH, default off).
  public var cudnnGraph: Bool
  /// Where the graph API's timed plans are kept between runs; nil keeps them in memory only.
  public var cudnnPlanCacheDirectory: URL?
  /// The python3 programs whose site-packages are searched for pip's nvidia-* libraries, in order.
  public var pythons: [String]
  /// Whether `--profile` reads the GPU's work from CUPTI's activity records (UNET_CUPTI, default on)
  /// rather than waiting after every op.
  public var activityTracing: Bool

  /// Settings given directly; the defaults search only the usual places, pick the fastest
  /// algorithms (the graph API first) and keep compiled kernels and plans in memory.
  public init(
    cudaPath: String? = nil, deterministicConvolutions: Bool = false, kernelCacheDirectory: URL? = nil,
    cudnnGraph: Bool = false, cudnnPlanCacheDirectory: URL? = nil,
    pythons: [String] = PythonPackages.interpreters(environment: ["PATH": PythonPackages.defaultSearchPath]),
    activityTracing: Bool = true
  ) {
    self.activityTracing = activityTracing
    self.cudaPath = cudaPath
    self.deterministicConvolutions = deterministicConvolutions
    self.kernelCacheDirectory = kernelCacheDirectory
    self.cudnnGraph = cudnnGraph
    self.cudnnPlanCacheDirectory = cudnnPlanCacheDirectory
    self.pythons = pythons
  }

  /// The settings `environment` asks for (an empty variable counts as unset); an invalid value is
  /// an error naming the variable and what it takes.
  public init(environment: [String: String]) throws {
    func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
    cudaPath = value("UNET_CUDA_PATH")
    pythons = PythonPackages.interpreters(environment: environment)
    switch value("UNET_CUDNN_DETERMINISTIC") {
    case nil, "0": deterministicConvolutions = false
    case "1": deterministicConvolutions = true
    case let other?:
      throw CUDAError(
        .invalidSetting,
        "UNET_CUDNN_DETERMINISTIC is '\(other)': set it to 1 for deterministic cuDNN convolutions, or 0 (or leave it unset) for the fastest")
    }
    switch value("UNET_CUDNN_GRAPH") {
    case "1": cudnnGraph = true
    case nil, "0": cudnnGraph = false
    case let other?:
      throw CUDAError(
        .invalidSetting,
        "UNET_CUDNN_GRAPH is '\(other)': set it to 1 for cuDNN's graph API with the legacy API as fallback, or 0 (or leave it unset) for the legacy API only")
    }
    switch value("UNET_CUPTI") {
    case nil, "1": activityTracing = true
    case "0": activityTracing = false
    case let other?:
      throw CUDAError(
        .invalidSetting,
        "UNET_CUPTI is '\(other)': set it to 0 for a --profile that waits after every op, or 1 (or leave it unset) for CUPTI's records")
    }
    let base = value("XDG_CACHE_HOME").map { URL(fileURLWithPath: $0) }
      ?? value("HOME").map { URL(fileURLWithPath: $0).appendingPathComponent(".cache") }
      ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
    /// A folder setting: `off` for none, a path, or the default under the cache folder.
    func folder(_ name: String, default leaf: String) -> URL? {
      guard let v = value(name) else { return base.appendingPathComponent(leaf) }
      return v == "off" ? nil : URL(fileURLWithPath: v)
    }
    kernelCacheDirectory = folder("UNET_CUBIN_CACHE", default: "unetseg/cubin")
    cudnnPlanCacheDirectory = folder("UNET_CUDNN_PLAN_CACHE", default: "unetseg/cudnn-plans")
  }

  /// Where the loader looks for the libraries: UNET_CUDA_PATH first, then the usual places.
  public var librarySearch: LibrarySearch {
    let pythons = pythons
    return LibrarySearch(cudaPath: cudaPath, pythonFolders: { PythonPackages.nvidiaLibraryFolders(interpreters: pythons) })
  }
}
