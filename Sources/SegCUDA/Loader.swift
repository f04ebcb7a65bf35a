import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - The libraries

/// A CUDA library the backend loads at run time with dlopen, so that the package builds and its
/// tests run on machines without CUDA.
public enum CUDALibrary: String, CaseIterable, Sendable {
  case driver, nvrtc, cublasLt, cublas, cudnn, nccl, cupti

  /// The file names to look for, preferred first (CUDA 13 before 12; cuDNN 9).
  public var sonames: [String] {
    switch self {
    case .driver: return ["libcuda.so.1"]
    case .nvrtc: return ["libnvrtc.so.13", "libnvrtc.so.12"]
    case .cublasLt: return ["libcublasLt.so.13", "libcublasLt.so.12"]
    case .cublas: return ["libcublas.so.13", "libcublas.so.12"]
    case .cudnn: return ["libcudnn.so.9"]
    case .nccl: return ["libnccl.so.2"]
    case .cupti: return ["libcupti.so.13", "libcupti.so.12"]
    }
  }

  /// What it is, for messages.
  public var title: String {
    switch self {
    case .driver: return "the CUDA driver (libcuda.so.1)"
    case .nvrtc: return "NVRTC, the CUDA runtime compiler (libnvrtc.so.13 or .12)"
    case .cublasLt: return "cuBLASLt (libcublasLt.so.13 or .12)"
    case .cublas: return "cuBLAS (libcublas.so.13 or .12)"
    case .cudnn: return "cuDNN 9 (libcudnn.so.9)"
    case .nccl: return "NCCL 2 (libnccl.so.2), for the gradient all-reduce of data-parallel runs on GPUs"
    case .cupti: return "CUPTI, the CUDA profiling interface (libcupti.so.13 or .12), for `--profile` without a wait after every op"
    }
  }

  /// How to install it.
  public var installHint: String {
    switch self {
    case .driver:
      return "libcuda.so.1 comes with the NVIDIA driver, not with pip: install the driver on a machine with an NVIDIA "
        + "GPU (e.g. `apt install nvidia-driver`, or NVIDIA's cuda-drivers package); in a container, start it with "
        + "the NVIDIA container toolkit (`docker run --gpus all`)."
    case .nvrtc:
      return "`pip install nvidia-cuda-nvrtc` (CUDA 13; `nvidia-cuda-nvrtc-cu12` for CUDA 12), or the CUDA toolkit "
        + "(`apt install cuda-nvrtc-13-0`); or set UNET_CUDA_PATH to the folder that holds libnvrtc.so.*."
    case .cublasLt, .cublas:
      return "`pip install nvidia-cublas` (CUDA 13; `nvidia-cublas-cu12` for CUDA 12), or the CUDA toolkit "
        + "(`apt install libcublas-13-0`); or set UNET_CUDA_PATH to the folder that holds libcublas.so.*."
    case .cudnn:
      return "`pip install nvidia-cudnn-cu13` (or `nvidia-cudnn-cu12`), or NVIDIA's apt repository "
        + "(`apt install cudnn9-cuda-13`); or set UNET_CUDA_PATH to the folder that holds libcudnn.so.9."
    case .nccl:
      return "`pip install nvidia-nccl-cu13` (or `nvidia-nccl-cu12`), or NVIDIA's apt repository (`apt install libnccl2`); "
        + "or set UNET_CUDA_PATH to the folder that holds libnccl.so.2."
    case .cupti:
      return "`pip install nvidia-cuda-cupti` (CUDA 13; `nvidia-cuda-cupti-cu12` for CUDA 12; PyTorch's CUDA wheels bring one), "
        + "or the CUDA toolkit (`apt install cuda-cupti-13-0`); or set UNET_CUDA_PATH to the folder that holds libcupti.so.*."
    }
  }

  /// A symbol that every version exports, used to find where a library loaded by soname came from.
  var probeSymbol: String {
    switch self {
    case .driver: return "cuInit"
    case .nvrtc: return "nvrtcVersion"
    case .cublasLt: return "cublasLtGetVersion"
    case .cublas: return "cublasCreate_v2"
    case .cudnn: return "cudnnGetVersion"
    case .nccl: return "ncclGetVersion"
    case .cupti: return "cuptiGetVersion"
    }
  }

  /// Libraries loaded first from the same folder, so that this one finds them whatever its run
  /// path says (cuBLAS needs cuBLASLt; cuDNN 9 opens its sub-libraries by soname).
  var companions: [String] {
    switch self {
    case .cublas: return ["libcublasLt.so.13", "libcublasLt.so.12"]
    case .cudnn:
      return [
        "libcublasLt.so.13", "libcublasLt.so.12", "libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9",
        "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9", "libcudnn_ops.so.9",
        "libcudnn_cnn.so.9", "libcudnn_adv.so.9",
      ]
    default: return []
    }
  }
}

// MARK: - A loaded library

/// A library opened with dlopen; it stays loaded for the life of the process.
public final class SharedLibrary: @unchecked Sendable {
  /// Which library.
  public let library: CUDALibrary
  /// The file name it was found under, e.g. libnvrtc.so.13.
  public let soname: String
  /// Where it was loaded from (resolved with dladdr when it came through the loader's default path).
  public let path: String
  let handle: UnsafeMutableRawPointer

  init(library: CUDALibrary, soname: String, path: String, handle: UnsafeMutableRawPointer) {
    self.library = library
    self.soname = soname
    self.path = path
    self.handle = handle
  }

  /// The address of the first of `names` that the library exports, or nil.
  func address(_ names: [String]) -> (String, UnsafeMutableRawPointer)? {
    for name in names {
      if let p = dlsym(handle, name) { return (name, p) }
    }
    return nil
  }
}

// MARK: - Symbol tables

/// Where an API table gets its function pointers: a loaded library, or (in tests) a recorder.
protocol SymbolSource {
  /// The function `api`, looked up under the first of `symbols` that exists (default: `api`).
  func load<F>(_ api: String, symbols: [String]) throws -> F
}

extension SymbolSource {
  func load<F>(_ api: String) throws -> F { try load(api, symbols: [api]) }
}

extension SharedLibrary: SymbolSource {
  func load<F>(_ api: String, symbols: [String]) throws -> F {
    guard let (_, p) = address(symbols) else {
      throw CUDAError(
        .symbolNotFound,
        "\(library.title) at \(path) has no symbol \(symbols.joined(separator: " or ")) (needed for \(api)); "
          + "it is too old or not the real library. Install a current version: \(library.installHint)")
    }
    return unsafeBitCast(p, to: F.self)
  }
}

// MARK: - Search

/// Where libraries are looked for, in order: UNET_CUDA_PATH (a folder, or folders separated by
/// ':', each also with lib64/ and lib/), the dynamic loader's default path, /usr/local/cuda*/lib64,
/// the system's library folders, then site-packages/nvidia/*/lib of each of `CUDAOptions.pythons`.
public struct LibrarySearch: Sendable {
  /// The value of UNET_CUDA_PATH (`CUDAOptions.cudaPath`), if set.
  public var cudaPath: String?
  /// Whether to try dlopen with the bare soname (LD_LIBRARY_PATH, ldconfig's cache).
  public var useLoaderPath: Bool
  /// Fixed folders after the loader's path.
  public var systemFolders: [String]
  /// Folders of pip's nvidia-* packages (computed lazily: it runs python3).
  public var pythonFolders: @Sendable () -> [String]

  public init(
    cudaPath: String?, useLoaderPath: Bool = true, systemFolders: [String] = LibrarySearch.defaultSystemFolders(),
    pythonFolders: @escaping @Sendable () -> [String] = {
      PythonPackages.nvidiaLibraryFolders(interpreters: CUDAOptions().pythons)
    }
  ) {
    self.cudaPath = cudaPath
    self.useLoaderPath = useLoaderPath
    self.systemFolders = systemFolders
    self.pythonFolders = pythonFolders
  }

  /// /usr/local/cuda/lib64, then other /usr/local/cuda-*/lib64 newest first, the system folders
  /// and WSL's driver folder.
  public static func defaultSystemFolders() -> [String] {
    let local = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/local")) ?? []
    let versions = local.filter { $0.hasPrefix("cuda-") }.sorted { $0.compare($1, options: .numeric) == .orderedDescending }
    return ["/usr/local/cuda/lib64"] + versions.map { "/usr/local/\($0)/lib64" }
      + ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib"]
  }

  /// The folders UNET_CUDA_PATH names.
  var cudaPathFolders: [String] {
    guard let cudaPath else { return [] }
    return cudaPath.split(separator: ":").flatMap { p in [String(p), "\(p)/lib64", "\(p)/lib"] }
  }
}

// MARK: - Loader

/// Finds and opens each CUDA library once; a failure is remembered too, so every later use gives
/// the same clear error without searching again.
public final class CUDALoader: @unchecked Sendable {
  public let search: LibrarySearch
  private var results: [CUDALibrary: Result<SharedLibrary, CUDAError>] = [:]
  private let lock = NSLock()

  /// A loader that looks where `search` says.
  public init(search: LibrarySearch) { self.search = search }

  /// A loader that looks in `options.cudaPath` first, then the usual places.
  public convenience init(options: CUDAOptions) { self.init(search: options.librarySearch) }

  /// The library, loaded on first use, or an error naming it, where it was looked for and how to
  /// install it.
  public func library(_ library: CUDALibrary) throws -> SharedLibrary {
    lock.lock()
    defer { lock.unlock() }
    if let r = results[library] { return try r.get() }
    let r: Result<SharedLibrary, CUDAError>
    do { r = .success(try open(library)) } catch let e as CUDAError { r = .failure(e) } catch {
      r = .failure(CUDAError(.libraryNotFound, "\(library.title): \(error)"))
    }
    results[library] = r
    return try r.get()
  }

  /// Searches in the documented order; the first file that dlopen accepts wins.
  private func open(_ library: CUDALibrary) throws -> SharedLibrary {
    var looked: [String] = []
    var failures: [String] = []
    func tryFolder(_ folder: String) -> SharedLibrary? {
      for soname in library.sonames {
        let path = "\(folder)/\(soname)"
        guard FileManager.default.fileExists(atPath: path) else { continue }
        preloadCompanions(of: library, in: folder)
        if let h = dlopen(path, RTLD_NOW | RTLD_GLOBAL) {
          return SharedLibrary(library: library, soname: soname, path: path, handle: h)
        }
        failures.append("\(path): \(lastDLError())")
      }
      return nil
    }
    for folder in search.cudaPathFolders {
      if let l = tryFolder(folder) { return l }
    }
    looked.append(search.cudaPath.map { "UNET_CUDA_PATH (\($0))" } ?? "UNET_CUDA_PATH (not set)")
    if search.useLoaderPath {
      for soname in library.sonames {
        if let h = dlopen(soname, RTLD_NOW | RTLD_GLOBAL) {
          let path = locate(h, library.probeSymbol) ?? soname
          return SharedLibrary(library: library, soname: soname, path: path, handle: h)
        }
        let message = lastDLError()
        // "cannot open shared object file" only says it is not on the path; anything else matters.
        if !message.contains("cannot open shared object file") { failures.append("\(soname): \(message)") }
      }
      looked.append("the dynamic loader's path (LD_LIBRARY_PATH, ldconfig)")
    }
    for folder in search.systemFolders {
      if let l = tryFolder(folder) { return l }
    }
    looked.append(contentsOf: search.systemFolders)
    let python = search.pythonFolders()
    for folder in python {
      if let l = tryFolder(folder) { return l }
    }
    looked.append(
      python.isEmpty
        ? "site-packages/nvidia/*/lib of UNET_PYTHON, the package's .venv and python3 on PATH (none found)"
        : python.joined(separator: ", "))
    var message = "\(library.title) was not found. Looked in: \(looked.joined(separator: "; "))."
    if !failures.isEmpty { message += " Found but could not load: \(failures.joined(separator: "; "))." }
    message += " To install: \(library.installHint)"
    throw CUDAError(.libraryNotFound, message)
  }

  /// Opens the companions present in `folder` (failures are left to the library itself to report).
  private func preloadCompanions(of library: CUDALibrary, in folder: String) {
    for name in library.companions {
      let path = "\(folder)/\(name)"
      if FileManager.default.fileExists(atPath: path) { _ = dlopen(path, RTLD_LAZY | RTLD_GLOBAL) }
    }
  }

  /// The file that defines `symbol` in the library behind `handle`: the mapping of this process
  /// (/proc/self/maps) that contains the symbol's address.
  private func locate(_ handle: UnsafeMutableRawPointer, _ symbol: String) -> String? {
    guard let p = dlsym(handle, symbol),
      let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
    else { return nil }
    let address = UInt(bitPattern: p)
    for line in maps.split(separator: "\n") {
      // "start-end perms offset dev inode path"
      let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
      guard fields.count == 6, let dash = fields[0].firstIndex(of: "-"),
        let start = UInt(fields[0][..<dash], radix: 16),
        let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16)
      else { continue }
      if address >= start && address < end { return fields[5].trimmingCharacters(in: .whitespaces) }
    }
    return nil
  }

  private func lastDLError() -> String {
    guard let e = dlerror() else { return "unknown dlopen error" }
    return String(cString: e)
  }
}
