import SegCore

// MARK: - The error of a result against its baseline

/// One element where two tensors were compared: its flat index, its position (one index per axis)
/// and both values.
public struct Mismatch: Codable, Sendable, Equatable, CustomStringConvertible {
  public let index: Int
  public let position: [Int]
  public let candidate: Double
  public let baseline: Double

  public init(index: Int, position: [Int], candidate: Double, baseline: Double) {
    (self.index, self.position, self.candidate, self.baseline) = (index, position, candidate, baseline)
  }

  public var description: String {
    "[\(position.map(String.init).joined(separator: ","))]: \(formatValue(candidate)) vs \(formatValue(baseline))"
  }
}

/// The relative error of a candidate tensor against a baseline one, floored by the baseline's scale:
///
///     error = max_i |a_i - b_i| / max(|b_i|, rms(b))       rms(b) = sqrt(mean_i b_i^2)
///
/// Elements at least as large as the tensor's root-mean-square are judged relatively; smaller ones
/// (zeros, and the near-zero results of cancellation in a sum or a convolution, whose rounding error
/// scales with the terms summed, not with the result) are judged against the tensor's typical
/// magnitude, so a different summation order does not fail, while a wrong element does. An all-zero
/// baseline makes the error absolute. Equal values (infinities included) and NaN in both places
/// count as equal; a NaN or infinity in one only is an infinite error.
public struct RelativeError: Codable, Sendable, Equatable {
  /// The largest per-element error (0 for equal tensors; infinity for mismatched shapes or NaNs).
  public let error: Double
  /// Where `error` is reached.
  public let worst: Mismatch?
  /// The first element (in row-major order) whose error exceeds the tolerance it was measured against.
  public let firstMismatch: Mismatch?
  /// The floor used: rms(b), or 1 for an all-zero baseline.
  public let scale: Double

  /// Compares `candidate` against `baseline` (row-major values of `shape`); `tolerance` only decides
  /// which element is reported as the first mismatch.
  public init(_ candidate: [Double], _ baseline: [Double], shape: Shape, tolerance: Double) {
    guard candidate.count == baseline.count else {
      (error, worst, firstMismatch, scale) = (.infinity, nil, nil, 1)
      return
    }
    let finite = baseline.filter(\.isFinite)
    let rms = finite.isEmpty ? 0 : (finite.reduce(0) { $0 + $1 * $1 } / Double(finite.count)).squareRoot()
    let scale = rms > 0 && rms.isFinite ? rms : 1
    var worstError = 0.0, worstIndex: Int? = nil, first: Int? = nil
    for i in candidate.indices {
      let e = Self.elementError(candidate[i], baseline[i], scale: scale)
      if e > worstError || (worstIndex == nil && e.isNaN) {
        worstError = e
        worstIndex = i
      }
      if first == nil && e > tolerance { first = i }
    }
    func mismatch(_ i: Int?) -> Mismatch? {
      i.map { Mismatch(index: $0, position: shape.position(of: $0), candidate: candidate[$0], baseline: baseline[$0]) }
    }
    (error, worst, firstMismatch, self.scale) = (worstError, mismatch(worstIndex), mismatch(first), scale)
  }

  /// |a - b| / max(|b|, scale), with the NaN and infinity rules above.
  static func elementError(_ a: Double, _ b: Double, scale: Double) -> Double {
    if a == b || (a.isNaN && b.isNaN) { return 0 }
    if !a.isFinite || !b.isFinite { return .infinity }
    return abs(a - b) / max(abs(b), scale)
  }
}

extension Shape {
  /// The row-major position of flat index `i`.
  func position(of i: Int) -> [Int] {
    var rest = i
    var position = [Int](repeating: 0, count: rank)
    for axis in stride(from: rank - 1, through: 0, by: -1) where self[axis] > 0 {
      position[axis] = rest % self[axis]
      rest /= self[axis]
    }
    return position
  }
}

// MARK: - Number formatting

/// A value in short scientific or plain notation, for tables and messages.
func formatValue(_ x: Double) -> String {
  if x.isNaN { return "nan" }
  if x.isInfinite { return x > 0 ? "inf" : "-inf" }
  if x == 0 { return "0" }
  if x == x.rounded() && abs(x) < 1e6 { return String(Int(x)) }
  return formatScientific(x, digits: 4)
}

/// x as d.dde±XX with `digits` significant digits (without Foundation's formatting).
func formatScientific(_ x: Double, digits: Int = 3) -> String {
  if x.isNaN { return "nan" }
  if x.isInfinite { return x > 0 ? "inf" : "-inf" }
  if x == 0 { return "0" }
  var v = abs(x), exponent = 0
  while v >= 10 {
    v /= 10
    exponent += 1
  }
  while v < 1 {
    v *= 10
    exponent -= 1
  }
  var unit = 1
  for _ in 1..<max(digits, 1) { unit *= 10 }
  var scaled = Int((v * Double(unit)).rounded())
  if scaled >= unit * 10 {
    scaled /= 10
    exponent += 1
  }
  let text = String(scaled)
  let mantissa = digits > 1 ? "\(text.prefix(1)).\(text.dropFirst())" : text
  let e = abs(exponent)
  return "\(x < 0 ? "-" : "")\(mantissa)e\(exponent < 0 ? "-" : "+")\(e < 10 ? "0" : "")\(e)"
}
