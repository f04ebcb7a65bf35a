// MARK: - Winograd F(4x4,3x3) transforms

/// The three transforms of Winograd's minimal filtering algorithm F(4x4,3x3) (Lavin and Gray,
/// "Fast Algorithms for Convolutional Neural Networks"): a 6x6 input tile d and a 3x3 filter g give
/// the 4x4 output tile Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A of their cross-correlation, 36 multiplies
/// instead of 144. Each works on 16 channels at once (one SIMD16 lane per channel), the block of
/// the nChw16c layout the activations are kept in.
enum WinogradTransforms {
  typealias V = SIMD16<Float>

  /// Tile sizes: 6x6 inputs, 4x4 outputs, 36 products.
  static let inputTile = 6
  static let outputTile = 4
  static let elements = 36

  // MARK: Input transform Bᵀ d B

  /// Bᵀ applied to six values a stride apart, written to `out` (six values, stride `outStride`).
  @inline(__always)
  static func inputRows(_ d: UnsafePointer<V>, _ s: Int, _ out: UnsafeMutablePointer<V>, _ os: Int) {
    let d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s]
    let a = d4 - 4 * d2, b = d3 - 4 * d1
    let c = d4 - d2, e = 2 * (d3 - d1)
    out[0] = 4 * d0 - 5 * d2 + d4
    out[os] = a + b
    out[2 * os] = a - b
    out[3 * os] = c + e
    out[4 * os] = c - e
    out[5 * os] = 4 * d1 - 5 * d3 + d5
  }

  /// v = Bᵀ d B for one 6x6 tile `d` (row-major), into `v` (row-major, 36 values); `t` is scratch.
  @inline(__always)
  static func input(_ d: UnsafePointer<V>, _ t: UnsafeMutablePointer<V>, _ v: UnsafeMutablePointer<V>) {
    for j in 0..<6 { inputRows(d + j, 6, t + j, 6) }  // columns: t = Bᵀ d
    for i in 0..<6 { inputRows(UnsafePointer(t + 6 * i), 1, v + 6 * i, 1) }  // rows: v = t B
  }

  // MARK: Output transform Aᵀ m A

  /// Aᵀ applied to six values a stride apart, written to `out` (four values, stride `os`).
  @inline(__always)
  static func outputRows(_ m: UnsafePointer<V>, _ s: Int, _ out: UnsafeMutablePointer<V>, _ os: Int) {
    let m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s]
    let p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4
    out[0] = m0 + p12 + p34
    out[os] = d12 + 2 * d34
    out[2 * os] = p12 + 4 * p34
    out[3 * os] = d12 + 8 * d34 + m5
  }

  /// y = Aᵀ m A for one tile of 36 products `m` (row-major), into `y` (4x4 row-major); `t` is scratch.
  @inline(__always)
  static func output(_ m: UnsafePointer<V>, _ t: UnsafeMutablePointer<V>, _ y: UnsafeMutablePointer<V>) {
    for j in 0..<6 { outputRows(m + j, 6, t + j, 6) }  // columns: t = Aᵀ m (4 rows of 6)
    for i in 0..<4 { outputRows(UnsafePointer(t + 6 * i), 1, y + 4 * i, 1) }  // rows: y = t A
  }

  // MARK: Filter transform G g Gᵀ

  /// G applied to three values a stride apart, written to `out` (six values, stride `os`).
  @inline(__always)
  static func filterRows(_ g: UnsafePointer<V>, _ s: Int, _ out: UnsafeMutablePointer<V>, _ os: Int) {
    let g0 = g[0], g1 = g[s], g2 = g[2 * s]
    let sum = g0 + g2
    out[0] = g0 / 4
    out[os] = -(sum + g1) / 6
    out[2 * os] = -(sum - g1) / 6
    out[3 * os] = (g0 / 4 + g1 / 2 + g2) / 6
    out[4 * os] = (g0 / 4 - g1 / 2 + g2) / 6
    out[5 * os] = g2
  }

  /// u = G g Gᵀ for one 3x3 filter `g` (row-major), into `u` (6x6 row-major); `t` is scratch.
  @inline(__always)
  static func filter(_ g: UnsafePointer<V>, _ t: UnsafeMutablePointer<V>, _ u: UnsafeMutablePointer<V>) {
    for j in 0..<3 { filterRows(g + j, 3, t + j, 3) }  // columns: t = G g (6 rows of 3)
    for i in 0..<6 { filterRows(UnsafePointer(t + 3 * i), 1, u + 6 * i, 1) }  // rows: u = t Gᵀ
  }
}
