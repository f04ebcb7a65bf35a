import ArgumentParser
import SegNN

extension Precision: ExpressibleByArgument {}

// MARK: - Precision options

/// `--precision` and the reference's `--amp`, shared by train, evaluate, predict and benchmark.
struct PrecisionOptions: ParsableArguments {
  @Option(help: ArgumentHelp(
    "fp32 (default: IEEE f32 convolutions; the reference runs TF32 on Ampere and newer), tf32 (f32 tensors, TF32 tensor-core convolutions), fp16 (f16 convolutions with dynamic loss scaling, as --amp) or bf16 (bf16 convolutions, no loss scaling). Weights, Adam, the softmax and the loss stay f32. On the cpu, bf16 runs in bf16 where the processor has AVX-512 BF16 and fp16 computes in fp32; a backend or processor without them computes in fp32 and says so.",
    valueName: "precision"))
  var precision: Precision?
  @Flag(help: "Mixed precision as the reference's --amp: the same as --precision fp16.")
  var amp = false

  func validate() throws { _ = try resolved() }

  /// The precision asked for: --precision, or fp16 for --amp, or fp32.
  func resolved() throws -> Precision {
    if amp, let precision, precision != .fp16 {
      throw ValidationError("--amp and --precision \(precision) conflict: --amp means --precision fp16; give one of them")
    }
    return amp ? .fp16 : precision ?? .fp32
  }
}
