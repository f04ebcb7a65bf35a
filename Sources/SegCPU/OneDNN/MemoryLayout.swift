import CDNNL
import SegCore

// MARK: - Roles

/// How a tensor's row-major shape maps onto oneDNN's logical dimensions.
enum TensorRole: Int, Hashable {
  /// An NHWC image batch, seen by oneDNN as dims (N, C, H, W).
  case activation
  /// An HWIO filter [KH, KW, I, O], seen by oneDNN as dims (O, I, KH, KW).
  case filter
  /// Any tensor as one dimension of `count` elements (elementwise work, biases).
  case flat
}

// MARK: - Layout

/// A concrete oneDNN memory descriptor (f32 or bf16), compared and hashed by every field that places an
/// element, so that it can key caches and tell whether two memories share one layout.
struct Layout: Hashable {
  let md: dnnl_memory_desc_t
  private let key: [Int64]

  init(_ md: dnnl_memory_desc_t) {
    self.md = md
    key = Layout.describe(md)
  }

  static func == (a: Layout, b: Layout) -> Bool { a.key == b.key }
  func hash(into h: inout Hasher) { h.combine(key) }

  /// Bytes a memory of this layout needs, padding included.
  var byteCount: Int {
    withUnsafePointer(to: md) { dnnl_memory_desc_get_size($0) }
  }

  /// The fields of the descriptor as integers (the blocking description for blocked formats).
  var fields: [Int64] { key }

  private static func describe(_ md: dnnl_memory_desc_t) -> [Int64] {
    let n = Int(md.ndims)
    var k: [Int64] = [Int64(n), Int64(md.data_type.rawValue), Int64(md.format_kind.rawValue), md.offset0]
    k += dimsArray(md.dims, n) + dimsArray(md.padded_dims, n) + dimsArray(md.padded_offsets, n)
    if md.format_kind == dnnl_blocked {
      let b = md.format_desc.blocking
      let nb = Int(b.inner_nblks)
      k += dimsArray(b.strides, n) + [Int64(nb)] + dimsArray(b.inner_blks, nb) + dimsArray(b.inner_idxs, nb)
    }
    return k
  }

  // MARK: Constructors

  /// A layout of `dims` (oneDNN's logical order) in the given format tag, or 'any' for a
  /// primitive to choose.
  static func make(_ dims: [Int], _ tag: dnnl_format_tag_t, _ dtype: DType = .f32) throws -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    let d = dims.map(Int64.init)
    try check(
      dnnl_memory_desc_init_by_tag(&md, Int32(d.count), d, try dataType(dtype), tag), "dnnl_memory_desc_init_by_tag")
    return md
  }

  /// oneDNN's data type for `dtype`: f32 and bf16 (the types the CPU's oneDNN kernels take).
  static func dataType(_ dtype: DType) throws -> dnnl_data_type_t {
    switch dtype {
    case .f32: return dnnl_f32
    case .bf16: return dnnl_bf16
    default: throw DNNLFailure(call: "a oneDNN memory of \(dtype)", status: dnnl_invalid_arguments)
    }
  }

  /// The row-major layout of a tensor of `shape` in `role`: NHWC, HWIO or one flat dimension.
  static func plain(_ shape: Shape, _ role: TensorRole, _ dtype: DType = .f32) throws -> Layout {
    guard role == .flat || shape.rank == 4 else {
      throw DNNLFailure(call: "layout of a rank-\(shape.rank) tensor as \(role)", status: dnnl_invalid_arguments)
    }
    switch role {
    case .activation:
      return Layout(try make(oneDNNDims(shape, role), dnnl_nhwc, dtype))
    case .filter:
      return Layout(try make(oneDNNDims(shape, role), dnnl_hwio, dtype))
    case .flat:
      return Layout(try make([shape.count], dnnl_a, dtype))
    }
  }

  /// oneDNN's logical dims for a tensor of `shape` in `role`.
  static func oneDNNDims(_ shape: Shape, _ role: TensorRole) -> [Int] {
    switch role {
    case .activation: return [shape[0], shape[3], shape[1], shape[2]]
    case .filter: return [shape[3], shape[2], shape[0], shape[1]]
    case .flat: return [shape.count]
    }
  }

  /// 'any': the primitive picks the layout it runs fastest on.
  static func any(_ dims: [Int], _ dtype: DType = .f32) throws -> dnnl_memory_desc_t {
    try make(dims, dnnl_format_tag_any, dtype)
  }
}

/// The first `n` entries of a C array of dims.
func dimsArray(_ t: dnnl_dims_t, _ n: Int) -> [Int64] {
  withUnsafeBytes(of: t) { Array($0.bindMemory(to: Int64.self).prefix(n)) }
}
