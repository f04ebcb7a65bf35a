import Foundation

// MARK: - Public functions

/// Elementwise -x.
public func neg(_ x: Tensor) throws -> Tensor { try Tensor.apply(Unary(.neg), [x]) }
/// Elementwise e^x.
public func exp(_ x: Tensor) throws -> Tensor { try Tensor.apply(Unary(.exp), [x]) }
/// Elementwise natural logarithm.
public func log(_ x: Tensor) throws -> Tensor { try Tensor.apply(Unary(.log), [x]) }
/// Elementwise square root.
public func sqrt(_ x: Tensor) throws -> Tensor { try Tensor.apply(Unary(.sqrt), [x]) }
/// Elementwise x + c.
public func add(_ x: Tensor, _ c: Double) throws -> Tensor {
  c == 0 ? x : try Tensor.apply(Unary(.addScalar(c)), [x])
}
/// Elementwise x * c.
public func mul(_ x: Tensor, _ c: Double) throws -> Tensor {
  c == 1 ? x : try Tensor.apply(Unary(.mulScalar(c)), [x])
}

extension Tensor {
  public static prefix func - (x: Tensor) throws -> Tensor { try neg(x) }
  public static func + (x: Tensor, c: Double) throws -> Tensor { try add(x, c) }
  public static func + (c: Double, x: Tensor) throws -> Tensor { try add(x, c) }
  public static func - (x: Tensor, c: Double) throws -> Tensor { try add(x, -c) }
  public static func - (c: Double, x: Tensor) throws -> Tensor { try add(neg(x), c) }
  public static func * (x: Tensor, c: Double) throws -> Tensor { try mul(x, c) }
  public static func * (c: Double, x: Tensor) throws -> Tensor { try mul(x, c) }
  public static func / (x: Tensor, c: Double) throws -> Tensor { try mul(x, 1 / c) }
}

// MARK: - Primitive

/// Elementwise unary function of a floating tensor.
public struct Unary: Primitive {
  /// Which function; the scalar ones carry their constant.
  public enum Function: Sendable, Equatable {
    case neg, exp, log, sqrt
    case addScalar(Double), mulScalar(Double)
  }
  public let function: Function

  public init(_ function: Function) { self.function = function }

  public static let kinds: [OpKind] = [.neg, .exp, .log, .sqrt, .addScalar, .mulScalar]

  public var kind: OpKind {
    switch function {
    case .neg: return .neg
    case .exp: return .exp
    case .log: return .log
    case .sqrt: return .sqrt
    case .addScalar: return .addScalar
    case .mulScalar: return .mulScalar
    }
  }

  public var description: String {
    switch function {
    case .addScalar(let c): return "addScalar(\(c))"
    case .mulScalar(let c): return "mulScalar(\(c))"
    default: return kind.rawValue
    }
  }

  /// The function on one value (the reference kernel's body).
  @inline(__always) public func apply(_ x: Double) -> Double {
    switch function {
    case .neg: return -x
    case .exp: return Foundation.exp(x)
    case .log: return Foundation.log(x)
    case .sqrt: return x.squareRoot()
    case .addScalar(let c): return x + c
    case .mulScalar(let c): return x * c
    }
  }

  public func outputType(_ inputs: [TensorType]) throws -> TensorType {
    try expectOperands(inputs, 1)
    return TensorType(inputs[0].shape, try expectSameFloatType(inputs))
  }

  public func vjp(_ inputs: [Tensor], output y: Tensor, cotangent g: Tensor, needed: [Bool]) throws -> [Tensor?] {
    guard needed[0] else { return [nil] }
    let x = inputs[0]
    switch function {
    case .neg: return [try neg(g)]
    case .exp: return [try g * y]
    case .log: return [try g / x]
    case .sqrt: return [try g / (y * 2)]
    case .addScalar: return [g]
    case .mulScalar(let c): return [try g * c]
    }
  }

  public func reference(_ inputs: [HostTensor], output: TensorType) throws -> HostTensor {
    HostTensor(type: output, doubles: inputs[0].doubles.map(apply))
  }
}
