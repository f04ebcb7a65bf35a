import Foundation
import SwiftProtobuf

// MARK: - Graph builder

/// Appends nodes and initializers to an ONNX graph, naming every value uniquely. Tensors are
/// stored as little-endian `raw_data` (ONNX's byte order on every platform).
struct ONNXGraphBuilder {
  /// The graph built so far.
  var graph = Onnx_GraphProto()
  /// The element type of floating-point weights (FLOAT or FLOAT16).
  let floatType: Onnx_TensorProto.DataType
  private var counter = 0

  init(name: String, floatType: Onnx_TensorProto.DataType) {
    graph.name = name
    self.floatType = floatType
  }

  /// A fresh value name starting with `stem`.
  mutating func fresh(_ stem: String) -> String {
    counter += 1
    return "\(stem)_\(counter)"
  }

  // MARK: - Initializers

  /// A floating-point initializer of `floatType` from f32 values (rounded to nearest for FLOAT16).
  /// Throws when a value is not finite or, for FLOAT16, beyond its range, which would make a file
  /// that computes nonsense.
  mutating func addFloats(_ name: String, dims: [Int], _ values: [Float]) throws {
    var t = Onnx_TensorProto()
    t.name = name
    t.dims = dims.map(Int64.init)
    t.dataType = Int32(floatType.rawValue)
    if let bad = values.firstIndex(where: { !$0.isFinite }) {
      throw ExportError("weight \"\(name)\" holds \(values[bad]) at element \(bad): the checkpoint is not a usable model")
    }
    if floatType == .float16 {
      if let bad = values.firstIndex(where: { abs($0) > Float(Float16.greatestFiniteMagnitude) }) {
        throw ExportError(
          "weight \"\(name)\" holds \(values[bad]) at element \(bad), beyond float16's range (65504): export with --precision fp32")
      }
      t.rawData = littleEndianBytes(values.map { Float16($0).bitPattern })
    } else {
      t.rawData = littleEndianBytes(values.map(\.bitPattern))
    }
    graph.initializer.append(t)
  }

  /// An int64 initializer (shapes, slice bounds) named freshly from `stem`; returns its name.
  mutating func addInt64s(_ stem: String, _ values: [Int]) -> String {
    var t = Onnx_TensorProto()
    t.name = fresh(stem)
    t.dims = [Int64(values.count)]
    t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
    t.rawData = littleEndianBytes(values.map { UInt64(bitPattern: Int64($0)) })
    graph.initializer.append(t)
    return t.name
  }

  // MARK: - Nodes

  /// Appends one node and returns the name of its (single) output.
  @discardableResult
  mutating func node(_ op: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [], output: String? = nil) -> String {
    var n = Onnx_NodeProto()
    n.opType = op
    n.input = inputs
    let out = output ?? fresh(op.lowercased())
    n.output = [out]
    n.name = out
    n.attribute = attributes
    graph.node.append(n)
    return out
  }

  // MARK: - Inputs and outputs

  /// A tensor value description with `dims`: an Int for a fixed size, a String for a named dynamic one.
  static func valueInfo(_ name: String, type: Onnx_TensorProto.DataType, dims: [Dimension]) -> Onnx_ValueInfoProto {
    var shape = Onnx_TensorShapeProto()
    shape.dim = dims.map { d in
      var dim = Onnx_TensorShapeProto.Dimension()
      switch d {
      case .fixed(let n): dim.dimValue = Int64(n)
      case .named(let s): dim.dimParam = s
      }
      return dim
    }
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = Int32(type.rawValue)
    tensor.shape = shape
    var v = Onnx_ValueInfoProto()
    v.name = name
    v.type.tensorType = tensor
    return v
  }

  /// One dimension of a value's shape.
  enum Dimension {
    case fixed(Int)
    case named(String)
  }
}

// MARK: - Attributes

/// ONNX attributes by kind.
enum Attribute {
  /// A list of integers (kernel_shape, pads, strides, perm, axes).
  static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .ints
    a.ints = values.map(Int64.init)
    return a
  }

  /// One integer (axis).
  static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .int
    a.i = Int64(value)
    return a
  }
}

// MARK: - Bytes

/// The values' bytes, least significant first.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> Data {
  var data = Data(capacity: values.count * MemoryLayout<T>.size)
  for v in values {
    withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) }
  }
  return data
}
