import Foundation

// MARK: - Settings from the environment

/// The CUDA backend's settings that come from the environment, read once (by the CLI, from the
/// process's environment) and passed to the backend, the library loader and the kernel compiler,
/// so that nothing below reads the environment itself and a test can set them directly.
///
/// - `UNET_CUDA_PATH`: folders (separated by ':') searched first for the CUDA libraries.
/// - `UNET_CUDNN_DETERMINISTIC`: 1 takes the fastest deterministic cuDNN algorithm rather than
///   the fastest (bit-identical reruns, at some cost in speed); 0 or unset, the fastest.
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
  /// The python3 programs whose site-packages are searched for pip's nvidia-* libraries, in order.
  public var pythons: [String]

  /// Settings given directly; the defaults search only the usual places, pick the fastest
  /// algorithms and keep compiled kernels in memory.
  public init(
    cudaPath: String? = nil, deterministicConvolutions: Bool = false, kernelCacheDirectory: URL? = nil,
    pythons: [String] = PythonPackages.interpreters(environment: ["PATH": PythonPackages.defaultSearchPath])
  ) {
    self.cudaPath = cudaPath
    self.deterministicConvolutions = deterministicConvolutions
    self.kernelCacheDirectory = kernelCacheDirectory
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
    if let cache = value("UNET_CUBIN_CACHE") {
      kernelCacheDirectory = cache == "off" ? nil : URL(fileURLWithPath: cache)
    } else {
      let base = value("XDG_CACHE_HOME").map { URL(fileURLWithPath: $0) }
        ?? value("HOME").map { URL(fileURLWithPath: $0).appendingPathComponent(".cache") }
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
      kernelCacheDirectory = base.appendingPathComponent("unetseg/cubin")
    }
  }

  /// Where the loader looks for the libraries: UNET_CUDA_PATH first, then the usual places.
  public var librarySearch: LibrarySearch {
    let pythons = pythons
    return LibrarySearch(cudaPath: cudaPath, pythonFolders: { PythonPackages.nvidiaLibraryFolders(interpreters: pythons) })
  }
}
