import SegCore

// MARK: - Elementwise functions

/// A function of two values, on scalars and on vectors; both forms round identically, so a
/// result does not depend on where a SIMD loop's tail starts.
protocol BinaryFunction {
  associatedtype T: KernelFloat
  func callAsFunction(_ a: T, _ b: T) -> T
  func callAsFunction(_ a: Vec<T>, _ b: Vec<T>) -> Vec<T>
}

struct AddFunction<T: KernelFloat>: BinaryFunction {
  @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a + b }
  @inline(__always) func callAsFunction(_ a: Vec<T>, _ b: Vec<T>) -> Vec<T> { a + b }
}

struct SubFunction<T: KernelFloat>: BinaryFunction {
  @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a - b }
  @inline(__always) func callAsFunction(_ a: Vec<T>, _ b: Vec<T>) -> Vec<T> { a - b }
}

struct MulFunction<T: KernelFloat>: BinaryFunction {
  @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a * b }
  @inline(__always) func callAsFunction(_ a: Vec<T>, _ b: Vec<T>) -> Vec<T> { a * b }
}

struct DivFunction<T: KernelFloat>: BinaryFunction {
  @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a / b }
  @inline(__always) func callAsFunction(_ a: Vec<T>, _ b: Vec<T>) -> Vec<T> { a / b }
}

/// dy where y > 0, else 0 (a NaN y gives 0, as the reference).
struct ReLUBackwardFunction<T: KernelFloat>: BinaryFunction {
  @inline(__always) func callAsFunction(_ dy: T, _ y: T) -> T { y > 0 ? dy : 0 }
  @inline(__always) func callAsFunction(_ dy: Vec<T>, _ y: Vec<T>) -> Vec<T> {
    dy.replacing(with: 0, where: .!(y .> 0))
  }
}

/// A function of one value, on scalars and on vectors.
protocol UnaryFunction {
  associatedtype T: KernelFloat
  func callAsFunction(_ x: T) -> T
  func callAsFunction(_ x: Vec<T>) -> Vec<T>
  /// False for C-library functions, which have no vector form: the loop calls them per element.
  static var vectorised: Bool { get }
}

extension UnaryFunction {
  static var vectorised: Bool { true }
  @inline(__always) func callAsFunction(_ x: Vec<T>) -> Vec<T> {
    var y = x
    for l in y.indices { y[l] = self(x[l]) }
    return y
  }
}

struct NegFunction<T: KernelFloat>: UnaryFunction {
  @inline(__always) func callAsFunction(_ x: T) -> T { -x }
  @inline(__always) func callAsFunction(_ x: Vec<T>) -> Vec<T> { -x }
}

struct SqrtFunction<T: KernelFloat>: UnaryFunction {
  @inline(__always) func callAsFunction(_ x: T) -> T { x.squareRoot() }
  @inline(__always) func callAsFunction(_ x: Vec<T>) -> Vec<T> { x.squareRoot() }
}

/// x + c, with c rounded to `T` once.
struct AddScalarFunction<T: KernelFloat>: UnaryFunction {
  let c: T
  @inline(__always) func callAsFunction(_ x: T) -> T { x + c }
  @inline(__always) func callAsFunction(_ x: Vec<T>) -> Vec<T> { x + c }
}

/// x * c, with c rounded to `T` once.
struct MulScalarFunction<T: KernelFloat>: UnaryFunction {
  let c: T
  @inline(__always) func callAsFunction(_ x: T) -> T { x * c }
  @inline(__always) func callAsFunction(_ x: Vec<T>) -> Vec<T> { x * c }
}

/// max(x, 0) as Swift's max, which the reference uses: NaN stays NaN, -0 becomes 0.
struct ReLUFunction<T: KernelFloat>: UnaryFunction {
  @inline(__always) func callAsFunction(_ x: T) -> T { x <= 0 ? 0 : x }
  @inline(__always) func callAsFunction(_ x: Vec<T>) -> Vec<T> { x.replacing(with: 0, where: x .<= 0) }
}

struct ExpFunction<T: KernelFloat>: UnaryFunction {
  static var vectorised: Bool { false }
  @inline(__always) func callAsFunction(_ x: T) -> T { T.cExp(x) }
}

struct LogFunction<T: KernelFloat>: UnaryFunction {
  static var vectorised: Bool { false }
  @inline(__always) func callAsFunction(_ x: T) -> T { T.cLog(x) }
}

// MARK: - Loops

/// out[i] = f(x[i]) for i in 0..<count, split across threads.
func runUnary<F: UnaryFunction>(_ f: F, _ x: UnsafePointer<F.T>, _ out: UnsafeMutablePointer<F.T>, count: Int) {
  // C-library functions cost ~20x an add, so they go parallel on smaller tensors.
  let grain = F.vectorised ? Parallel.defaultGrain : Parallel.defaultGrain / 16
  Parallel.forEach(count, grain: grain) { r in
    var i = r.lowerBound
    if F.vectorised {
      while i + 8 <= r.upperBound {
        out.store(f(x.vector(at: i)), at: i)
        i += 8
      }
    }
    while i < r.upperBound {
      out[i] = f(x[i])
      i += 1
    }
  }
}

/// out = f(a, b) over a broadcast plan: each run is a vector-vector, vector-scalar or
/// scalar-vector SIMD loop.
func runBinary<F: BinaryFunction>(
  _ f: F, _ plan: StridedPlan, _ a: UnsafePointer<F.T>, _ b: UnsafePointer<F.T>, _ out: UnsafeMutablePointer<F.T>
) {
  let sa = plan.innerStride(0), sb = plan.innerStride(1)
  plan.forEachRun { o, ia, ib, n in
    let pa = a + ia, pb = b + ib, po = out + o
    var i = 0
    switch (sa, sb) {
    case (1, 1):
      while i + 8 <= n {
        po.store(f(pa.vector(at: i), pb.vector(at: i)), at: i)
        i += 8
      }
      while i < n {
        po[i] = f(pa[i], pb[i])
        i += 1
      }
    case (1, _):
      let s = pb[0], v = Vec<F.T>(repeating: s)
      while i + 8 <= n {
        po.store(f(pa.vector(at: i), v), at: i)
        i += 8
      }
      while i < n {
        po[i] = f(pa[i], s)
        i += 1
      }
    case (_, 1):
      let s = pa[0], v = Vec<F.T>(repeating: s)
      while i + 8 <= n {
        po.store(f(v, pb.vector(at: i)), at: i)
        i += 8
      }
      while i < n {
        po[i] = f(s, pb[i])
        i += 1
      }
    default:
      // Both repeated along the row: only for a one-element output.
      let s = f(pa[0], pb[0])
      for j in 0..<n { po[j] = s }
    }
  }
}

// MARK: - Kernels

/// add, sub, mul, div with NumPy broadcasting, in f32 or f64.
func binaryKernel(_ op: Binary, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 2)
  let kind = try floatKind(op, inputs, output)
  let plan = StridedPlan(broadcasting: inputs.map(\.type.shape), to: output.type.shape)
  func run<T: KernelFloat>(_: T.Type) {
    let a = inputs[0].elements(T.self), b = inputs[1].elements(T.self), o = output.elements(T.self)
    switch op.function {
    case .add: runBinary(AddFunction<T>(), plan, a, b, o)
    case .sub: runBinary(SubFunction<T>(), plan, a, b, o)
    case .mul: runBinary(MulFunction<T>(), plan, a, b, o)
    case .div: runBinary(DivFunction<T>(), plan, a, b, o)
    }
  }
  switch kind {
  case .f32: run(Float.self)
  case .f64: run(Double.self)
  }
}

/// reluBackward(dy, y) (one shape), in f32 or f64: the fallback for dtypes oneDNN does not take.
func reluBackwardKernel(_ op: ReLUBackward, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 2)
  let kind = try floatKind(op, inputs, output)
  let plan = StridedPlan(broadcasting: inputs.map(\.type.shape), to: output.type.shape)
  func run<T: KernelFloat>(_: T.Type) {
    let dy = inputs[0].elements(T.self), y = inputs[1].elements(T.self)
    runBinary(ReLUBackwardFunction<T>(), plan, dy, y, output.elements(T.self))
  }
  switch kind {
  case .f32: run(Float.self)
  case .f64: run(Double.self)
  }
}

/// neg, exp, log, sqrt, addScalar and mulScalar, in f32 or f64.
func unaryKernel(_ op: Unary, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  let kind = try floatKind(op, inputs, output)
  func run<T: KernelFloat>(_: T.Type) {
    let x = inputs[0].elements(T.self), o = output.elements(T.self), n = output.type.shape.count
    switch op.function {
    case .neg: runUnary(NegFunction<T>(), x, o, count: n)
    case .exp: runUnary(ExpFunction<T>(), x, o, count: n)
    case .log: runUnary(LogFunction<T>(), x, o, count: n)
    case .sqrt: runUnary(SqrtFunction<T>(), x, o, count: n)
    case .addScalar(let c): runUnary(AddScalarFunction(c: T(c)), x, o, count: n)
    case .mulScalar(let c): runUnary(MulScalarFunction(c: T(c)), x, o, count: n)
    }
  }
  switch kind {
  case .f32: run(Float.self)
  case .f64: run(Double.self)
  }
}

/// relu, in f32 or f64: the fallback for dtypes oneDNN does not take.
func reluKernel(_ op: ReLU, _ inputs: [PlainOperand], _ output: PlainOutput) throws {
  try expectInputs(op, inputs, 1)
  let kind = try floatKind(op, inputs, output)
  func run<T: KernelFloat>(_: T.Type) {
    runUnary(ReLUFunction<T>(), inputs[0].elements(T.self), output.elements(T.self), count: output.type.shape.count)
  }
  switch kind {
  case .f32: run(Float.self)
  case .f64: run(Double.self)
  }
}
