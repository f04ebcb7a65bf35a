import SegCore

// MARK: - Element storage of every dtype

/// The storage type of one dtype, with the conversions of `DType.round` / `HostTensor.converted`:
/// to f32, f16 and bf16 through Float (one rounding from f64, as the reference), to f64 exactly, to
/// integers by truncation toward zero with wrap-around (NaN, infinities and values beyond Int64
/// give 0).
protocol StoredElement {
  var asDouble: Double { get }
  var asFloat: Float { get }
  static func converted<S: StoredElement>(_ s: S) -> Self
}

extension Double: StoredElement {
  @inline(__always) var asDouble: Double { self }
  @inline(__always) var asFloat: Float { Float(self) }
  @inline(__always) static func converted<S: StoredElement>(_ s: S) -> Double { s.asDouble }
}

extension Float: StoredElement {
  @inline(__always) var asDouble: Double { Double(self) }
  @inline(__always) var asFloat: Float { self }
  @inline(__always) static func converted<S: StoredElement>(_ s: S) -> Float { s.asFloat }
}

extension Float16: StoredElement {
  @inline(__always) var asDouble: Double { Double(Float(self)) }
  @inline(__always) var asFloat: Float { Float(self) }
  @inline(__always) static func converted<S: StoredElement>(_ s: S) -> Float16 { Float16(s.asFloat) }
}

/// bfloat16 bits (the only dtype stored as UInt16).
extension UInt16: StoredElement {
  @inline(__always) var asDouble: Double { Double(BFloat16.toFloat(self)) }
  @inline(__always) var asFloat: Float { BFloat16.toFloat(self) }
  @inline(__always) static func converted<S: StoredElement>(_ s: S) -> UInt16 { BFloat16.fromFloat(s.asFloat) }
}

extension Int32: StoredElement {
  @inline(__always) var asDouble: Double { Double(self) }
  @inline(__always) var asFloat: Float { Float(self) }
  @inline(__always) static func converted<S: StoredElement>(_ s: S) -> Int32 {
    Int32(truncatingIfNeeded: truncatedInt64(s.asDouble))
  }
}

extension UInt8: StoredElement {
  @inline(__always) var asDouble: Double { Double(self) }
  @inline(__always) var asFloat: Float { Float(self) }
  @inline(__always) static func converted<S: StoredElement>(_ s: S) -> UInt8 {
    UInt8(truncatingIfNeeded: truncatedInt64(s.asDouble))
  }
}

/// x truncated toward zero as Int64; 0 where that is not defined (NaN, infinite, out of range).
@inline(__always) func truncatedInt64(_ x: Double) -> Int64 {
  x > -9.223_372_036_854_775_808e18 && x < 9.223_372_036_854_775_808e18 ? Int64(x) : 0
}

/// Code generic over a dtype's storage type, run by `visitStorage` for a dtype known at run time
/// (a generic visitor, so that each storage type gets its own specialised loop).
protocol StorageVisitor {
  associatedtype Result
  func visit<E: StoredElement>(_: E.Type) -> Result
}

/// Runs `visitor` with the storage type of `dtype`.
func visitStorage<V: StorageVisitor>(_ dtype: DType, _ visitor: V) -> V.Result {
  switch dtype {
  case .f64: return visitor.visit(Double.self)
  case .f32: return visitor.visit(Float.self)
  case .f16: return visitor.visit(Float16.self)
  case .bf16: return visitor.visit(UInt16.self)
  case .i32: return visitor.visit(Int32.self)
  case .u8: return visitor.visit(UInt8.self)
  }
}

// MARK: - Cast

/// cast between any two dtypes, elementwise in parallel.
func castKernel(_ op: Cast, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  let n = output.type.shape.count
  guard inputs[0].type.dtype != output.type.dtype else {
    return copyBytes(from: inputs[0].pointer, to: output.pointer, count: n * output.type.dtype.byteSize)
  }
  visitStorage(inputs[0].type.dtype, CastFrom(input: inputs[0], output: output))
}

/// Picks the output's storage type for a cast from storage S.
private struct CastFrom: StorageVisitor {
  let input: PlainOperand
  let output: PlainOutput
  func visit<S: StoredElement>(_: S.Type) {
    visitStorage(output.type.dtype, CastLoop<S>(input: input, output: output))
  }
}

/// The loop of a cast from storage S to storage D.
private struct CastLoop<S: StoredElement>: StorageVisitor {
  let input: PlainOperand
  let output: PlainOutput
  func visit<D: StoredElement>(_: D.Type) {
    let x = input.elements(S.self), out = output.elements(D.self)
    Parallel.forEach(output.type.shape.count, grain: Parallel.defaultGrain) { r in
      for i in r { out[i] = D.converted(x[i]) }
    }
  }
}

// MARK: - Random mask

/// randomMask in any floating dtype, bit for bit the reference's counter-based hash: element i
/// depends only on (seed, offset + i), so threads may take any share.
func randomMaskKernel(_ op: RandomMask, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 0)
  // The kept value as the reference rounds it: dtype.round(1 / keepProbability).
  let scale = 1 / op.keepProbability
  let threshold = op.keepProbability * 16_777_216.0
  func run<D: StoredElement>(_: D.Type) {
    let out = output.elements(D.self), kept = D.converted(scale), dropped = D.converted(0.0)
    Parallel.forEach(output.type.shape.count, grain: Parallel.defaultGrain / 4) { r in
      for i in r {
        out[i] = Double(maskBits(seed: op.seed, counter: op.offset &+ UInt64(i))) < threshold ? kept : dropped
      }
    }
  }
  switch output.type.dtype {
  case .f64: run(Double.self)
  case .f32: run(Float.self)
  case .f16: run(Float16.self)
  case .bf16: run(UInt16.self)
  case .i32, .u8:
    throw TensorError(op: "randomMask", operands: [output.type], "the mask needs a floating-point dtype")
  }
}

/// `RandomMask.bits`, repeated here so that it inlines into the loop; a test checks they agree.
@inline(__always) func maskBits(seed: UInt64, counter: UInt64) -> UInt64 {
  var z = seed ^ (counter &* 0x9E37_79B9_7F4A_7C15)
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  z = z ^ (z >> 31)
  return z >> 40
}

// MARK: - Labels

/// argmax along any axis of any dtype, to i32: the first maximum, and the first NaN if any.
func argmaxKernel(_ op: ArgMax, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  let axis = op.axis
  try expectInputs(op, inputs, 1)
  let dims = inputs[0].type.shape.dims
  guard output.type.dtype == .i32, (0..<dims.count).contains(axis), dims[axis] > 0 else {
    throw TensorError(op: "argmax", operands: [inputs[0].type], "the CPU kernel needs a non-empty axis and an i32 output")
  }
  let n = dims[axis], inner = dims[(axis + 1)...].reduce(1, *), outer = dims[..<axis].reduce(1, *)
  visitStorage(
    inputs[0].type.dtype,
    ArgmaxLoop(input: inputs[0], output: output.elements(Int32.self), n: n, inner: inner, outer: outer))
}

/// argmax over storage S: per outer index, each of `inner` lanes sweeps the axis.
private struct ArgmaxLoop: StorageVisitor {
  let input: PlainOperand
  let output: UnsafeMutablePointer<Int32>
  let n: Int, inner: Int, outer: Int
  func visit<S: StoredElement>(_: S.Type) {
    let x = input.elements(S.self)
    Parallel.forEachTask(outer, cost: n * inner) { o in
      let base = x + o * n * inner, best = output + o * inner
      for i in 0..<inner {
        var b = base[i].asDouble, k = 0
        for j in 1..<n {
          if b.isNaN { break }
          let v = base[j * inner + i].asDouble
          if v.isNaN || v > b { (b, k) = (v, j) }
        }
        best[i] = Int32(k)
      }
    }
  }
}

/// oneHot of i32 or u8 labels into any dtype; a label outside 0..<classes fails as the reference,
/// naming the first such label and its index.
func oneHotKernel(_ op: OneHot, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  let classes = op.classes
  try expectInputs(op, inputs, 1)
  switch inputs[0].type.dtype {
  case .i32: try oneHot(inputs[0], Int32.self, classes, output)
  case .u8: try oneHot(inputs[0], UInt8.self, classes, output)
  default:
    throw TensorError(op: "oneHot", operands: [inputs[0].type], "labels must be i32 or u8; use cast(_:to:)")
  }
}

/// Checks every label first, so that the error names the first bad one, then writes the rows.
private func oneHot<L: StoredElement & BinaryInteger>(
  _ labels: PlainOperand, _: L.Type, _ classes: Int, _ output: PlainOutput
) throws {
  let x = labels.elements(L.self), count = labels.type.shape.count
  for i in 0..<count where !(0..<classes).contains(Int(x[i])) {
    throw TensorError(
      op: "oneHot", operands: [labels.type], "label \(Int(x[i])) at index \(i) is outside 0..<\(classes)")
  }
  visitStorage(output.type.dtype, OneHotLoop(labels: x, count: count, classes: classes, output: output))
}

/// Writes one-hot rows into storage D.
private struct OneHotLoop<L: BinaryInteger>: StorageVisitor {
  let labels: UnsafePointer<L>
  let count: Int, classes: Int
  let output: PlainOutput
  func visit<D: StoredElement>(_: D.Type) {
    let out = output.elements(D.self), one = D.converted(1.0), zero = D.converted(0.0)
    Parallel.forEach(count, grain: max(1, Parallel.defaultGrain / classes), align: 1) { r in
      for i in r {
        let row = out + i * classes
        for c in 0..<classes { row[c] = zero }
        row[Int(labels[i])] = one
      }
    }
  }
}
