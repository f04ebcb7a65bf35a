// MARK: - Plans

/// Fractions of a tile trimmed from each side before zooming back to the tile's size.
public struct CropBox: Equatable, Sendable {
  public var top, left, bottom, right: Double

  /// A box trimming the given fractions.
  public init(top: Double = 0, left: Double = 0, bottom: Double = 0, right: Double = 0) {
    (self.top, self.left, self.bottom, self.right) = (top, left, bottom, right)
  }
}

/// The paper's elastic deformation: displacements (in pixels) at `size` x `size` control points
/// spread evenly over the tile, corners included, interpolated to every pixel by cubic convolution.
public struct DisplacementGrid: Equatable, Sendable {
  public var size: Int
  /// Row-major [size, size] displacements along x and along y.
  public var dx, dy: [Double]

  /// A grid of `size` x `size` control points; `dx` and `dy` hold size * size values each.
  public init(size: Int, dx: [Double], dy: [Double]) {
    precondition(size >= 2 && dx.count == size * size && dy.count == size * size, "DisplacementGrid: \(dx.count), \(dy.count) values for \(size)x\(size)")
    (self.size, self.dx, self.dy) = (size, dx, dy)
  }
}

/// The concrete choices for one sample. Geometric transforms, in the order they act on the
/// source: flips, `rotations` quarter turns counter-clockwise (as NumPy's rot90), crop-and-zoom,
/// elastic deformation; then, on the image only: contrast, brightness, noise, and a clip to [-1, 1].
public struct AugmentationPlan: Equatable, Sendable {
  public var flipX = false, flipY = false
  /// Quarter turns counter-clockwise, 0..<4.
  public var rotations = 0
  public var crop = CropBox()
  public var elastic: DisplacementGrid?
  /// Added to every image value.
  public var brightness = 0.0
  /// Multiplies each channel's deviations from its tile mean.
  public var contrast = 1.0
  /// Standard deviation of additive Gaussian noise, and the seed of its values.
  public var noiseStd = 0.0
  public var noiseSeed: UInt64 = 0
  public var interpolation = ImageInterpolation.bilinear

  /// The identity: nothing changes.
  public init() {}

  /// Whether the plan moves no pixel.
  public var isGeometricIdentity: Bool {
    !flipX && !flipY && rotations % 4 == 0 && crop == CropBox() && elastic == nil
  }

  /// Whether the plan changes no image value beyond the geometric transforms.
  public var isIntensityIdentity: Bool { brightness == 0 && contrast == 1 && noiseStd == 0 }
}
