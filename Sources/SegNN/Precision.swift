import SegCore

// MARK: - Requested precision

/// The arithmetic a run asks for (the precision setting). Master weights, Adam's moments, the softmax,
/// the loss, its reductions and the update are f32 in every case; only the model's convolutions and
/// the activations between them change type.
public enum Precision: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
  /// f32 everywhere, IEEE products in the convolutions.
  case fp32
  /// f32 tensors; convolutions may use TF32 tensor-core math (f32 accumulation).
  case tf32
  /// f16 convolutions and activations, with dynamic loss scaling (the reference's AMP).
  case fp16
  /// bf16 convolutions and activations; f32's exponent range, so no loss scaling.
  case bf16

  /// The dtype of the convolutions' operands and of the activations between them.
  public var computeType: DType {
    switch self {
    case .fp32, .tf32: return .f32
    case .fp16: return .f16
    case .bf16: return .bf16
    }
  }

  /// Whether f32 convolutions may use TF32 tensor-core math (tf32 only: fp32 stays IEEE).
  public var allowsTF32: Bool { self == .tf32 }

  /// Whether the loss is scaled dynamically (fp16 only: its exponent range loses small gradients).
  public var usesLossScaling: Bool { self == .fp16 }

  /// True for fp16 and bf16.
  public var isHalf: Bool { computeType != .f32 }

  public var description: String { rawValue }
}

// MARK: - Resolved policy

/// A requested `Precision` resolved against what a backend computes: a backend without
/// half-precision convolutions computes fp16 and bf16 requests in f32 (the CPU has bf16 ones on
/// processors with AVX-512 BF16, and no f16 ones) (fp16 keeps its loss
/// scaling, so the scaled path runs and is tested there), and one without TF32 computes tf32 as
/// fp32. The one place that decides the compute type.
public struct PrecisionPolicy: Sendable, Equatable, CustomStringConvertible {
  /// What the run asked for.
  public let requested: Precision
  /// What the convolutions actually compute in on the backend.
  public let effective: Precision
  /// The backend's name, for `note`.
  public let backendName: String

  /// Why bf16 was not computed as asked (the backend's words, e.g. the processor lacks it), nil when
  /// the backend gave none.
  public let reason: String?

  /// `requested` on a backend that has (or lacks) half-precision and TF32 convolutions; bf16 ones
  /// are the half-precision ones unless `bf16Convolutions` says otherwise (a CPU with AVX-512 BF16
  /// has bf16 convolutions and no f16 ones), and `reason` says why they are missing.
  public init(
    _ requested: Precision, backendName: String, halfPrecisionConvolutions: Bool, tf32Convolutions: Bool,
    bf16Convolutions: Bool? = nil, reason: String? = nil
  ) {
    self.requested = requested
    self.backendName = backendName
    switch requested {
    case .fp32: effective = .fp32
    case .tf32: effective = tf32Convolutions ? .tf32 : .fp32
    case .fp16: effective = halfPrecisionConvolutions ? .fp16 : .fp32
    case .bf16: effective = bf16Convolutions ?? halfPrecisionConvolutions ? .bf16 : .fp32
    }
    self.reason = requested == .bf16 && effective != .bf16 ? reason : nil
  }

  /// `requested` resolved against `backend`'s capabilities.
  public init(_ requested: Precision, on backend: any Backend) {
    self.init(requested, backendName: backend.name, halfPrecisionConvolutions: backend.halfPrecisionConvolutions,
              tf32Convolutions: backend.tf32Convolutions, bf16Convolutions: backend.bf16Convolutions,
              reason: backend.bf16Unavailability)
  }

  /// Plain fp32: no casts, no loss scaling.
  public static let fp32 = PrecisionPolicy(.fp32, backendName: "any", halfPrecisionConvolutions: false, tf32Convolutions: false)

  /// The dtype the model's convolutions and activations compute in.
  public var computeType: DType { effective.computeType }
  /// Whether convolutions may use TF32 math (the backend applies it when it creates them).
  public var allowsTF32: Bool { effective.allowsTF32 }
  /// Whether training scales the loss dynamically: follows the request, so that fp16 asked of a
  /// backend computing in f32 still runs (and tests) the scaled path.
  public var usesLossScaling: Bool { requested.usesLossScaling }

  /// A sentence for people when the backend does not compute what was asked, nil when it does;
  /// `training` adds that fp16's loss scaling still applies.
  public func note(training: Bool) -> String? {
    guard effective != requested else { return nil }
    let scaling = training && usesLossScaling ? "; training still applies fp16's dynamic loss scaling" : ""
    if let reason {
      return "\(reason), so the \(backendName) backend has no \(requested) convolutions here: \(requested) computes in \(effective)\(scaling)"
    }
    let missing = requested == .tf32 ? "TF32" : "half-precision"
    return "the \(backendName) backend has no \(missing) convolutions: \(requested) computes in \(effective)\(scaling)"
  }

  public var description: String {
    effective == requested ? requested.rawValue : "\(requested) (computed in \(effective))"
  }
}
