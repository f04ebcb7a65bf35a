import SegCore

// MARK: - Configuration

/// The shape of a U-Net: NVIDIA's by default (572 in, 388 out, valid convs, 64..1024 filters).
public struct UNetConfig: Codable, Equatable, Sendable {
  /// How the 3x3 convolutions pad.
  public enum Padding: String, Codable, Sendable, CaseIterable { case valid, same }

  public var inputChannels = 1
  public var classes = 2
  /// Filters of the first level; each level down doubles them.
  public var baseFilters = 64
  /// Number of 2x2 poolings.
  public var depth = 4
  public var padding = Padding.valid
  /// Kernel of the stride-2 transposed convolutions (NVIDIA: 3, the paper: 2).
  public var upconvKernel = 3
  /// Side of the square input tile.
  public var inputSize = 572
  /// Dropout rate after the bottleneck convs (training only).
  public var dropout = 0.5

  public init() {}

  /// Filters at a level (0 = top).
  public func filters(level: Int) -> Int { baseFilters << level }

  // MARK: - Geometry

  /// Sizes along the network for a given input side, or the reason it does not fit.
  public struct Geometry: Equatable, Sendable {
    /// Side of each skip tensor (before pooling), top level first.
    public var skips: [Int] = []
    /// Side after the bottleneck's convs.
    public var bottleneck = 0
    /// Side of the logits.
    public var output = 0
  }

  /// The sizes through the network for input side `n`; nil if some size would be odd before a
  /// pooling or not positive.
  public func geometry(input n: Int) -> Geometry? {
    let shrink = padding == .valid ? 4 : 0
    var g = Geometry()
    var s = n
    for _ in 0..<depth {
      s -= shrink
      guard s > 0, s % 2 == 0 else { return nil }
      g.skips.append(s)
      s /= 2
    }
    s -= shrink
    guard s > 0 else { return nil }
    g.bottleneck = s
    for level in stride(from: depth - 1, through: 0, by: -1) {
      s = s * 2 - shrink
      guard s > 0, s <= g.skips[level] else { return nil }
    }
    g.output = s
    return g
  }

  /// Valid input sides closest to `n` (one below and one above, when they exist).
  public func nearestValidInputSizes(to n: Int) -> [Int] {
    let below = stride(from: n - 1, to: 0, by: -1).first { geometry(input: $0) != nil }
    let above = (n + 1...n + 4096).first { geometry(input: $0) != nil }
    return [below, above].compactMap { $0 }
  }

  /// Checks every field; throws `SettingError` naming the first bad one and what would be valid.
  public func validate() throws {
    guard inputChannels >= 1 else { throw SettingError(.inputChannels, value: inputChannels, "must be at least 1") }
    guard classes >= 2 else { throw SettingError(.classes, value: classes, "must be at least 2 (background and one class)") }
    guard baseFilters >= 1 else { throw SettingError(.baseFilters, value: baseFilters, "must be at least 1") }
    guard (1...6).contains(depth) else { throw SettingError(.depth, value: depth, "must be between 1 and 6") }
    guard upconvKernel == 2 || upconvKernel == 3 else { throw SettingError(.upconvKernel, value: upconvKernel, "must be 2 or 3") }
    guard (0..<1).contains(dropout) else { throw SettingError(.dropout, value: dropout, "must be in [0, 1)") }
    guard geometry(input: inputSize) != nil else {
      let near = nearestValidInputSizes(to: inputSize).map(String.init).joined(separator: " or ")
      throw SettingError(.inputSize, value: inputSize, "does not fit a depth-\(depth) \(padding.rawValue) U-Net; nearest valid: \(near)")
    }
  }

  /// Side of the logits for the configured input.
  public var outputSize: Int { geometry(input: inputSize)?.output ?? 0 }
}

// MARK: - Size

extension UNetConfig {
  /// Trainable scalars of the model this config builds, counted from the layer shapes.
  public var parameterCount: Int {
    func conv(_ k: Int, _ cin: Int, _ cout: Int) -> Int { k * k * cin * cout + cout }
    var n = 0
    for level in 0..<depth {
      n += conv(3, level == 0 ? inputChannels : filters(level: level - 1), filters(level: level))
      n += conv(3, filters(level: level), filters(level: level))
    }
    n += conv(3, filters(level: depth - 1), filters(level: depth)) + conv(3, filters(level: depth), filters(level: depth))
    for level in 0..<depth {
      n += conv(upconvKernel, filters(level: level + 1), filters(level: level))
      n += conv(3, 2 * filters(level: level), filters(level: level)) + conv(3, filters(level: level), filters(level: level))
    }
    return n + conv(1, baseFilters, classes)
  }
}
