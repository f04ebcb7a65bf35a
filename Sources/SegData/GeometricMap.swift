// MARK: - Geometric units

// Each geometric augmentation is a map from an output position to the source position it reads,
// in coordinates centred on the frame (u = x - (width - 1) / 2, v likewise). `GeometricMap`
// composes them, so image and label are moved by one and the same map.

/// `flip`: mirrors left-right (`x`) and top-bottom (`y`) about the frame's centre.
struct Flip {
  let x, y: Bool

  @inline(__always)
  func source(_ u: Double, _ v: Double) -> (Double, Double) { (x ? -u : u, y ? -v : v) }
}

/// `rot90`: `turns` quarter turns counter-clockwise about the frame's centre, as NumPy's rot90.
struct QuarterTurn {
  /// 0..<4.
  let turns: Int

  init(_ turns: Int) { self.turns = ((turns % 4) + 4) % 4 }

  /// One counter-clockwise quarter turn reads (u, v) from (-v, u).
  @inline(__always)
  func source(_ u: Double, _ v: Double) -> (Double, Double) {
    switch turns {
    case 1: return (-v, u)
    case 2: return (-u, -v)
    case 3: return (v, -u)
    default: return (u, v)
    }
  }
}

/// `zoom`: the crop box's rectangle stretched over the frame (source = scale * output + offset).
struct Zoom {
  private let scaleX, offsetX, scaleY, offsetY: Double

  /// The reference's crop_and_resize with box [top, left, 1 - bottom, 1 - right] maps output
  /// pixel x to left * (w - 1) + x * (1 - left - right); the same, centred.
  init(_ c: CropBox, frameHeight h: Int, frameWidth w: Int) {
    scaleX = 1 - c.left - c.right
    offsetX = Double(w - 1) * (c.left - c.right) / 2
    scaleY = 1 - c.top - c.bottom
    offsetY = Double(h - 1) * (c.top - c.bottom) / 2
  }

  @inline(__always)
  func source(_ u: Double, _ v: Double) -> (Double, Double) { (u * scaleX + offsetX, v * scaleY + offsetY) }
}

// MARK: - Output-to-source map

/// A plan's geometric transforms composed into one map from output pixels to source positions.
/// Centred coordinates let tiles of different sizes sharing a centre (an input tile and its smaller
/// output window) move together, and the identity lands exactly on pixel centres. Going from output
/// back to source, the transforms are undone in reverse: elastic displacement, zoom, rotation, flips.
struct GeometricMap {
  let frameHeight, frameWidth: Int
  let isIdentity: Bool
  private let cx, cy: Double
  private let flip: Flip
  private let turn: QuarterTurn
  private let zoom: Zoom
  private let elastic: ElasticField?

  init(_ plan: AugmentationPlan, frameHeight h: Int, frameWidth w: Int) {
    (frameHeight, frameWidth) = (h, w)
    isIdentity = plan.isGeometricIdentity
    cx = Double(w - 1) / 2
    cy = Double(h - 1) / 2
    flip = Flip(x: plan.flipX, y: plan.flipY)
    turn = QuarterTurn(plan.rotations)
    zoom = Zoom(plan.crop, frameHeight: h, frameWidth: w)
    elastic = plan.elastic.map { ElasticField($0, frameHeight: h, frameWidth: w) }
  }

  /// The source positions (centred) of frame row `y`, columns `x0 ..< x0 + count`, into `us`, `vs`.
  func row(_ y: Int, from x0: Int, count: Int, us: inout [Double], vs: inout [Double]) {
    let v0 = Double(y) - cy
    if let e = elastic {
      e.row(y, from: x0, count: count, dx: &us, dy: &vs)
    } else {
      for i in 0..<count { (us[i], vs[i]) = (0, 0) }
    }
    for i in 0..<count {
      var (u, v) = zoom.source(Double(x0 + i) - cx + us[i], v0 + vs[i])
      (u, v) = turn.source(u, v)
      (us[i], vs[i]) = flip.source(u, v)
    }
  }
}

// MARK: - Elastic displacement

/// `elastic`: a displacement grid interpolated to every pixel of a frame by separable cubic
/// convolution (Keys, a = -0.5: it passes through the control values and is smooth between them),
/// the grid extended by its edge values beyond the corners. An output pixel reads from itself
/// plus its displacement.
struct ElasticField {
  private let n: Int
  private let grid: DisplacementGrid
  /// Dense interpolation weights: [frame row, control row] and [frame column, control column].
  private let rowWeights, columnWeights: [Double]

  init(_ grid: DisplacementGrid, frameHeight h: Int, frameWidth w: Int) {
    self.grid = grid
    n = grid.size
    rowWeights = ElasticField.weights(positions: h, controls: n)
    columnWeights = ElasticField.weights(positions: w, controls: n)
  }

  /// Displacements of frame row `y`, columns `x0 ..< x0 + count`.
  func row(_ y: Int, from x0: Int, count: Int, dx: inout [Double], dy: inout [Double]) {
    // Interpolate down the columns once per row, then across per pixel.
    var colX = [Double](repeating: 0, count: n), colY = colX
    for a in 0..<n {
      let wa = rowWeights[y * n + a]
      if wa == 0 { continue }
      for b in 0..<n {
        colX[b] += wa * grid.dx[a * n + b]
        colY[b] += wa * grid.dy[a * n + b]
      }
    }
    for i in 0..<count {
      var sx = 0.0, sy = 0.0
      let base = (x0 + i) * n
      for b in 0..<n {
        sx += columnWeights[base + b] * colX[b]
        sy += columnWeights[base + b] * colY[b]
      }
      (dx[i], dy[i]) = (sx, sy)
    }
  }

  /// For each of `positions` pixels, the weight of each of `controls` evenly spread control points
  /// (the first on pixel 0, the last on pixel positions - 1).
  static func weights(positions: Int, controls n: Int) -> [Double] {
    var w = [Double](repeating: 0, count: positions * n)
    let spacing = positions > 1 ? Double(positions - 1) / Double(n - 1) : 1
    for p in 0..<positions {
      let g = Double(p) / spacing
      let i = min(Int(g.rounded(.down)), n - 1)
      let f = g - Double(i)
      for t in -1...2 {
        let k = min(max(i + t, 0), n - 1)
        w[p * n + k] += Augmentation.keys(f - Double(t))
      }
    }
    return w
  }
}
