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

  /// The handle of the kernel named `kernel`; nil for a name no family defines. Launches resolve
  /// handles by `handle(_:_:_:)` instead, which builds no string.
  public static func handle(_ kernel: String) -> KernelHandle? { handles[kernel].map(KernelHandle.init) }

  /// The handle of `op`'s kernel for `dtype` (and `second`, the output dtype of cast and oneHot):
  /// an index into a table made once, so a launch makes and hashes no string. An error names the
  /// kernel when no family instantiates it for these dtypes.
  @inline(__always)
  public static func handle(_ op: KernelOp, _ dtype: DType, _ second: DType? = nil) throws -> KernelHandle {
    let i = typed[KernelOp.slot(op, dtype, second ?? dtype)]
    guard i >= 0 else {
      throw CUDAError(.unsupported, "no CUDA kernel \(op.kernelName(dtype, second ?? dtype)) is compiled for \(dtype)")
    }
    return KernelHandle(index: Int(i))
  }

  /// The family index of each kernel, by handle.
  static let familyOfHandle: [Int] = families.indices.flatMap { i in Array(repeating: i, count: families[i].kernels.count) }

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

  /// Handles by `KernelOp.slot`, -1 where no family defines the kernel; filled once from the names.
  private static let typed: [Int32] = {
    var table = [Int32](repeating: -1, count: KernelOp.allCases.count * KernelOp.dtypeSlots * KernelOp.dtypeSlots)
    for op in KernelOp.allCases {
      for a in DType.allCases {
        for b in DType.allCases where op.takesTwoTypes || a == b {
          if let h = handles[op.kernelName(a, b)] { table[KernelOp.slot(op, a, b)] = Int32(h) }
        }
      }
    }
    return table
  }()
}

// MARK: - Typed handles

/// A kernel of `KernelLibrary`, by its position in `allKernels`: what a device launches, resolved
/// from `(KernelOp, DType)` with no string.
public struct KernelHandle: Hashable, Sendable, CustomStringConvertible {
  /// The position in `KernelLibrary.allKernels` (and in a device's table of loaded functions).
  public let index: Int
  /// The kernel's extern "C" name (for messages, profiles and the emulator).
  public var name: String { isGenerated ? family.kernels[0] : KernelLibrary.allKernels[index] }
  /// The family (module) that defines it.
  public var family: KernelFamily {
    isGenerated ? GeneratedKernels.shared.family(at: index) : KernelLibrary.families[KernelLibrary.familyOfHandle[index]]
  }
  /// Whether it was generated at run time (`GeneratedKernels`), a family of its own.
  public var isGenerated: Bool { index >= KernelLibrary.allKernels.count }
  public var description: String { name }
}

/// What a kernel does, the first half of its typed key (the second is the dtype): one case per
/// kernel template the families instantiate.
public enum KernelOp: Int, CaseIterable, Sendable {
  case add, sub, mul, div, reluBackward, neg, exp, log, sqrt, relu, addScalar, mulScalar, biasActivation
  case sumPartial, sumFinish, softmax, logSoftmax, softmaxBlock, logSoftmaxBlock
  case padBackward, randomMask, argmax, maxPool2d, maxPool2dBackward, skipGradient
  case adam, adamStats, multiAdam
  /// Variants that read a step scalar from device memory (a captured step: `StepScalarPlacement`).
  case addScalarAt, mulScalarAt, randomMaskAt
  /// Moved by element size: `<op>_b<dtype.byteSize>`.
  case copy, pad, cropConcat, cropConcatBackward
  /// Keyed by two dtypes: `cast_<from>_<to>`, `oneHot_<labels>_<output>`.
  case cast, oneHot
  /// One kernel for every dtype (it reads the f32 partial sums of `adamStats`).
  case adamStatsFinish
  /// Both passes of a sum over rows in one launch (`ReduceKernels`).
  case sumRows

  static let dtypeSlots = DType.allCases.count

  /// Whether the kernel is keyed by two dtypes.
  var takesTwoTypes: Bool { self == .cast || self == .oneHot }

  /// The kernel's name for the dtypes: built only to fill the table and for messages.
  func kernelName(_ a: DType, _ b: DType) -> String {
    switch self {
    case .copy, .pad, .cropConcat, .cropConcatBackward: return "\(self)_b\(a.byteSize)"
    case .cast, .oneHot: return "\(self)_\(a.rawValue)_\(b.rawValue)"
    case .adamStatsFinish: return "\(self)"
    default: return "\(self)_\(a.rawValue)"
    }
  }

  /// The table position of (op, a, b).
  @inline(__always)
  static func slot(_ op: KernelOp, _ a: DType, _ b: DType) -> Int {
    (op.rawValue * dtypeSlots + a.kernelSlot) * dtypeSlots + b.kernelSlot
  }
}

extension DType {
  /// The dtype's position in kernel tables (a switch, no hashing).
  @inline(__always)
  var kernelSlot: Int {
    switch self {
    case .f64: return 0
    case .f32: return 1
    case .f16: return 2
    case .bf16: return 3
    case .i32: return 4
    case .u8: return 5
    }
  }
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
}
