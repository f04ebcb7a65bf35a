import SegCore

// MARK: - Kernel families

/// One CUDA source that NVRTC compiles as a unit (one module), and the kernels it defines. The
/// source is the shared prelude, the family's templates, then one macro line per kernel, generated
/// from the same lists as `kernels`, so that the names Swift launches are the names compiled.
public struct KernelFamily: Sendable {
  /// Short name, e.g. "elementwise"; also the NVRTC program name (<name>.cu).
  public let name: String
  /// The complete CUDA C++ source.
  public let source: String
  /// The entry points (extern "C" names) it defines.
  public let kernels: [String]

  init(name: String, body: String, instances: [(kernel: String, line: String)]) {
    self.name = name
    self.source = KernelPrelude.source + "\n" + body + "\n" + instances.map(\.line).joined(separator: "\n") + "\n"
    self.kernels = instances.map(\.kernel)
  }
}

/// Every kernel family of the CUDA backend: each primitive op that is not a convolution, and the
/// fused Adam update.
public enum KernelLibrary {
  public static let families: [KernelFamily] = [
    ElementwiseKernels.family, ReduceKernels.family, LayoutKernels.family, ConvertKernels.family,
    PoolingKernels.family, OptimizerKernels.family,
  ]

  /// The family that defines `kernel`.
  public static func family(of kernel: String) -> KernelFamily? { index[kernel].map { families[$0] } }

  /// Every kernel of every family, in order: a kernel's position is its handle, the index of its
  /// loaded function in a device's table.
  public static let allKernels: [String] = families.flatMap(\.kernels)

  /// The handle of `kernel` (its position in `allKernels`); nil for a name no family defines.
  public static func handle(_ kernel: String) -> Int? { handles[kernel] }

  private static let handles: [String: Int] = {
    var result: [String: Int] = [:]
    for (i, k) in allKernels.enumerated() { result[k] = i }
    return result
  }()

  private static let index: [String: Int] = {
    var result: [String: Int] = [:]
    for (i, f) in families.enumerated() { for k in f.kernels { result[k] = i } }
    return result
  }()
}

// MARK: - Names and types

/// How kernels are named and which C type holds each dtype in kernel sources.
enum KernelNames {
  /// The floating dtypes the arithmetic kernels are instantiated for (f16 and bf16 compute in f32).
  static let floats: [DType] = [.f32, .f16, .bf16, .f64]
  /// Every dtype (cast, argmax, oneHot).
  static let all: [DType] = [.f32, .f16, .bf16, .f64, .i32, .u8]
  /// Element sizes of the byte-copying layout kernels.
  static let byteSizes = [1, 2, 4, 8]

  /// The C storage type of a dtype in kernel sources (f16 and bf16 are 16-bit patterns).
  static func cType(_ d: DType) -> String {
    switch d {
    case .f32: return "float"
    case .f64: return "double"
    case .f16: return "half_t"
    case .bf16: return "bf16_t"
    case .i32: return "int"
    case .u8: return "u8"
    }
  }

  /// The unsigned type that moves `bytes`-byte elements.
  static func wordType(_ bytes: Int) -> String {
    switch bytes {
    case 1: return "u8"
    case 2: return "u16"
    case 4: return "u32"
    default: return "u64"
    }
  }

  /// "<base>_<dtype>", e.g. add_f32 (the families' instance lists).
  static func name(_ base: String, _ d: DType) -> String { "\(base)_\(d.rawValue)" }

  /// The same name for a launch: the kernel's own string, made once (`interned`), so that a launch
  /// builds no string.
  static func launchName(_ base: String, _ d: DType) -> String { interned[base]?[d.rawValue] ?? name(base, d) }

  /// Every kernel name "<base>_<dtype>" by base and dtype.
  private static let interned: [String: [String: String]] = {
    var result: [String: [String: String]] = [:]
    for family in KernelLibrary.families {
      for k in family.kernels {
        guard let cut = k.lastIndex(of: "_") else { continue }
        result[String(k[..<cut]), default: [:]][String(k[k.index(after: cut)...])] = k
      }
    }
    return result
  }()
}
