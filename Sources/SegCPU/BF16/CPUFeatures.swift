import CDNNL
import Foundation

// MARK: - What the processor computes bf16 with

/// The processor's bf16 arithmetic, from its /proc/cpuinfo flags and oneDNN's effective ISA:
/// bf16 convolutions run where both say so. Built from given flags in tests, so that the decision
/// and its message can be checked on any machine.
public struct CPUFeatures: Equatable, Sendable {
  /// The flags the decision read ("avx512_bf16", "amx_bf16", ...).
  public let flags: Set<String>
  /// Whether oneDNN's dispatcher may use its AVX-512 BF16 (or newer) kernels: false when the
  /// library is capped below them (DNNL_MAX_CPU_ISA) or the processor lacks them.
  public let oneDNNHasBF16: Bool

  /// The processor's "model name" in /proc/cpuinfo, nil when it has none.
  public let modelName: String?

  /// Features of given flags and oneDNN ISA answer.
  public init(flags: Set<String>, oneDNNHasBF16: Bool, modelName: String? = nil) {
    self.flags = flags
    self.oneDNNHasBF16 = oneDNNHasBF16
    self.modelName = modelName
  }

  /// Features from the text of /proc/cpuinfo (its "flags" and "model name" lines) and oneDNN's answer.
  public init(cpuinfo: String, oneDNNHasBF16: Bool) {
    var flags: Set<String> = []
    var model: String?
    for line in cpuinfo.split(separator: "\n") {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let key = line[..<colon].trimmingCharacters(in: .whitespaces), value = line[line.index(after: colon)...]
      if key == "flags" { flags.formUnion(value.split(separator: " ").map(String.init)) }
      if key == "model name", model == nil { model = value.trimmingCharacters(in: .whitespaces) }
    }
    self.init(flags: flags, oneDNNHasBF16: oneDNNHasBF16, modelName: model)
  }

  /// This machine's features, read once.
  public static let current: CPUFeatures = {
    let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let isa = dnnl_get_effective_cpu_isa().rawValue
    let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
    return CPUFeatures(cpuinfo: text, oneDNNHasBF16: isa & bf16 == bf16)
  }()

  /// Whether the processor has bf16 dot products (AVX-512 BF16 or AMX-BF16).
  public var processorHasBF16: Bool { flags.contains("avx512_bf16") || flags.contains("amx_bf16") }

  /// Whether the CPU backend runs bf16 convolutions: the processor and oneDNN both can.
  public var bf16Convolutions: Bool { processorHasBF16 && oneDNNHasBF16 }

  /// Why bf16 convolutions are unavailable, for people; nil when they are available.
  public var bf16Unavailability: String? {
    if !processorHasBF16 {
      return "this processor lacks AVX-512 BF16 (no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo)"
    }
    if !oneDNNHasBF16 {
      return "oneDNN does not use this processor's AVX-512 BF16 (is DNNL_MAX_CPU_ISA set below AVX512_CORE_BF16?)"
    }
    return nil
  }

  /// The ISA oneDNN dispatches to, by name ("avx512_core_bf16", "avx2", ...), for benchmark records.
  public static var oneDNNISA: String {
    let isa = dnnl_get_effective_cpu_isa()
    switch isa {
    case dnnl_cpu_isa_sse41: return "sse41"
    case dnnl_cpu_isa_avx: return "avx"
    case dnnl_cpu_isa_avx2: return "avx2"
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
    case dnnl_cpu_isa_avx512_core: return "avx512_core"
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
    default: return "isa \(isa.rawValue)"
    }
  }
}
