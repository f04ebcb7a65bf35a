import Foundation
import SegCore
@testable import SegData
import Testing

/// A grayscale tile from rows of values.
func image(_ rows: [[Float]]) -> ImageTile {
  ImageTile(height: rows.count, width: rows[0].count, channels: 1, values: rows.flatMap { $0 })
}

/// A label tile from rows of classes.
func label(_ rows: [[UInt8]]) -> LabelTile {
  LabelTile(height: rows.count, width: rows[0].count, classes: rows.flatMap { $0 })
}

/// An h x w x c tile of distinct values in [-1, 1] and an h x w label of classes 0..<classes.
func randomTiles(_ h: Int, _ w: Int, channels c: Int = 1, classes: Int = 3, seed: UInt64) -> (ImageTile, LabelTile) {
  var rng = SplitMix64(seed: seed)
  let values = (0..<h * w * c).map { _ in Float(rng.nextUnit() * 2 - 1) }
  let labels = (0..<h * w).map { _ in UInt8(rng.next() % UInt64(classes)) }
  return (ImageTile(height: h, width: w, channels: c, values: values), LabelTile(height: h, width: w, classes: labels))
}

func plan(_ edit: (inout AugmentationPlan) -> Void) -> AugmentationPlan {
  var p = AugmentationPlan()
  edit(&p)
  return p
}

@Suite struct AugmentationTests {
  // MARK: Flips and rotations

  @Test func flipsMirrorTheTile() {
    let img = image([[1, 2, 3], [4, 5, 6]]), lab = label([[0, 1, 2], [3, 4, 5]])
    let x = Augmentation.apply(plan { $0.flipX = true }, image: img, label: lab)
    #expect(x.image == image([[3, 2, 1], [6, 5, 4]]))
    #expect(x.label == label([[2, 1, 0], [5, 4, 3]]))
    let y = Augmentation.apply(plan { $0.flipY = true }, image: img, label: lab)
    #expect(y.image == image([[4, 5, 6], [1, 2, 3]]))
    #expect(y.label == label([[3, 4, 5], [0, 1, 2]]))
  }

  @Test func quarterTurnIsNumPysRot90() {
    // np.rot90([[1,2,3],[4,5,6],[7,8,9]]) == [[3,6,9],[2,5,8],[1,4,7]]
    let img = image([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), lab = label([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    let r = Augmentation.apply(plan { $0.rotations = 1 }, image: img, label: lab)
    #expect(r.image == image([[3, 6, 9], [2, 5, 8], [1, 4, 7]]))
    #expect(r.label == label([[3, 6, 9], [2, 5, 8], [1, 4, 7]]))
    let r3 = Augmentation.apply(plan { $0.rotations = 3 }, image: img, label: lab)
    #expect(r3.image == image([[7, 4, 1], [8, 5, 2], [9, 6, 3]]))
    // Even sides: the centre lies between pixels.
    let even = Augmentation.apply(plan { $0.rotations = 1 }, image: image([[1, 2], [3, 4]]))
    #expect(even == image([[2, 4], [1, 3]]))
  }

  @Test func fourQuarterTurnsAreTheIdentity() {
    let (img, lab) = randomTiles(6, 6, channels: 2, seed: 1)
    var (a, b) = (img, lab)
    for _ in 0..<4 { (a, b) = Augmentation.apply(plan { $0.rotations = 1 }, image: a, label: b) }
    #expect(a == img && b == lab)
    // A half turn is both flips; channels move together.
    let half = Augmentation.apply(plan { $0.rotations = 2 }, image: img, label: lab)
    let flips = Augmentation.apply(plan { $0.flipX = true; $0.flipY = true }, image: img, label: lab)
    #expect(half.image == flips.image && half.label == flips.label)
    #expect(half.image.values[0..<2] == img.values[(35 * 2)..<(36 * 2)])
  }

  // MARK: Crop-and-zoom

  @Test func zeroTrimAndZeroDisplacementAreTheIdentity() {
    let (img, lab) = randomTiles(7, 5, channels: 3, seed: 2)
    for interpolation in ImageInterpolation.allCases {
      // A zero grid forces the resampling path that an identity plan would skip.
      let p = plan {
        $0.crop = CropBox()
        $0.elastic = DisplacementGrid(size: 3, dx: Array(repeating: 0, count: 9), dy: Array(repeating: 0, count: 9))
        $0.interpolation = interpolation
      }
      #expect(!p.isGeometricIdentity)
      let out = Augmentation.apply(p, image: img, label: lab)
      #expect(out.image == img, "\(interpolation)")
      #expect(out.label == lab)
    }
  }

  @Test func cropAndZoomMatchesCropAndResize() {
    // tf.image.crop_and_resize with box [0, 0.25, 1, 1] maps column x to 0.25 * 4 + 0.75 * x.
    let ramp = image(Array(repeating: [0, 1, 2, 3, 4], count: 5))
    let out = Augmentation.apply(plan { $0.crop = CropBox(left: 0.25) }, image: ramp)
    for y in 0..<5 {
      let row = Array(out.values[y * 5..<(y + 1) * 5])
      #expect(zip(row, [1, 1.75, 2.5, 3.25, 4]).allSatisfy { abs($0 - Float($1)) < 1e-6 }, "\(row)")
    }
    // Labels take the nearest source pixel: columns 1, 1.75, 2.5, 3.25, 4 -> 1, 2, 3, 3, 4.
    let labels = label(Array(repeating: [0, 1, 2, 3, 4], count: 5))
    let l = Augmentation.apply(plan { $0.crop = CropBox(left: 0.25) }, label: labels)
    #expect(Array(l.classes[0..<5]) == [1, 2, 3, 3, 4])
  }

  // MARK: Elastic deformation

  @Test func uniformDisplacementShiftsAndMirrors() {
    let ramp = image(Array(repeating: (0..<8).map(Float.init), count: 4))
    let shift = plan { $0.elastic = DisplacementGrid(size: 3, dx: Array(repeating: 2, count: 9), dy: Array(repeating: 0, count: 9)) }
    let out = Augmentation.apply(shift, image: ramp)
    // Reads x + 2, mirrored past the right edge: 2, 3, ..., 7, 6, 5.
    let expected: [Float] = [2, 3, 4, 5, 6, 7, 6, 5]
    for y in 0..<4 {
      #expect(zip(out.values[y * 8..<(y + 1) * 8], expected).allSatisfy { abs($0 - $1) < 1e-5 })
    }
  }

  @Test func displacementFieldPassesThroughControlPointsSmoothly() {
    let w = ElasticField.weights(positions: 21, controls: 3)
    for (p, k) in [(0, 0), (10, 1), (20, 2)] {
      #expect((0..<3).map { w[p * 3 + $0] } == (0..<3).map { $0 == k ? 1.0 : 0.0 }, "pixel \(p)")
    }
    for p in 0..<21 { #expect(abs((0..<3).reduce(0) { $0 + w[p * 3 + $1] } - 1) < 1e-12) }
    var rng = SplitMix64(seed: 3)
    let grid = DisplacementGrid(size: 3, dx: (0..<9).map { _ in rng.nextNormal() * 10 }, dy: (0..<9).map { _ in rng.nextNormal() * 10 })
    let field = ElasticField(grid, frameHeight: 21, frameWidth: 21)
    var dx = [Double](repeating: 0, count: 21), dy = dx
    field.row(10, from: 0, count: 21, dx: &dx, dy: &dy)
    #expect(abs(dx[0] - grid.dx[3]) < 1e-9 && abs(dx[10] - grid.dx[4]) < 1e-9 && abs(dy[20] - grid.dy[5]) < 1e-9)
    // Neighbouring pixels move by nearly the same amount: control points 10 px apart, sigma 10.
    for i in 1..<21 { #expect(abs(dx[i] - dx[i - 1]) < 8) }
  }

  // MARK: Labels and intensities

  @Test func labelsStayInTheirSetUnderEveryTransform() {
    var options = AugmentationOptions.all
    (options.flipXProbability, options.flipYProbability, options.cropProbability, options.elasticProbability) = (0.5, 0.5, 1, 1)
    options.elasticSigma = 6
    options.interpolation = .bicubic
    var rng = SplitMix64(seed: 4)
    var (img, lab) = randomTiles(16, 16, classes: 3, seed: 5)
    lab.classes = lab.classes.map { [0, 3, 7][Int($0)] }
    for _ in 0..<20 {
      let p = options.draw(&rng)
      // The label cut as large as the image and its centre kept, as the pipeline does ...
      let centre = Augmentation.apply(p, image: img, label: lab, labelSize: (8, 8))
      #expect(centre.label.height == 8 && centre.label.width == 8)
      #expect(Set(centre.label.classes).isSubset(of: [0, 3, 7]))
      // ... and whole, each plan applied to the last one's output, so that transforms compose.
      (img, lab) = Augmentation.apply(p, image: img, label: lab)
      #expect(Set(lab.classes).isSubset(of: [0, 3, 7]))
      #expect(img.values.allSatisfy { $0 >= -1 && $0 <= 1 })
    }
  }

  @Test func intensityChangesTouchImagesOnly() {
    let img = image([[0.9, -0.5], [0, -0.95]]), lab = label([[1, 0], [0, 1]])
    let bright = Augmentation.apply(plan { $0.brightness = 0.2 }, image: img, label: lab)
    #expect(zip(bright.image.values, [1, -0.3, 0.2, -0.75]).allSatisfy { abs($0 - $1) < 1e-6 }, "clipped at 1")
    #expect(bright.label == lab)
    let contrast = Augmentation.apply(plan { $0.contrast = 0.5 }, image: img)
    let mean: Float = img.values.reduce(0, +) / 4
    let expected: [Float] = img.values.map { mean + ($0 - mean) / 2 }
    #expect(zip(contrast.values, expected).allSatisfy { abs($0 - $1) < 1e-6 })

    let flat = ImageTile(height: 64, width: 64, values: Array(repeating: 0, count: 4096))
    let noisy = Augmentation.apply(plan { $0.noiseStd = 0.1; $0.noiseSeed = 9 }, image: flat)
    let m = noisy.values.reduce(0, +) / 4096
    let std = (noisy.values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / 4096).squareRoot()
    #expect(abs(m) < 0.01 && abs(std - 0.1) < 0.01, "mean \(m), std \(std)")
    #expect(noisy == Augmentation.apply(plan { $0.noiseStd = 0.1; $0.noiseSeed = 9 }, image: flat), "seeded")
  }

  // MARK: Drawing

  @Test func drawsAreSeededAndOptionsGate() throws {
    var a = SplitMix64(seed: 6), b = SplitMix64(seed: 6)
    let options = AugmentationOptions.all
    try options.validate()
    #expect(options.draw(&a) == options.draw(&b))
    var c = SplitMix64(seed: 6)
    #expect(AugmentationOptions.none.draw(&c) == AugmentationPlan(), "all off draws the identity")
    var seen = Set<Int>(), flips = 0
    for _ in 0..<200 {
      let p = options.draw(&a)
      seen.insert(p.rotations)
      flips += p.flipX ? 1 : 0
      #expect([p.crop.top, p.crop.left, p.crop.bottom, p.crop.right].allSatisfy { (0..<0.3).contains($0) })
      #expect(abs(p.brightness) <= 0.2 && options.contrastRange.contains(p.contrast) && p.noiseStd <= 0.05)
    }
    #expect(seen == [0, 1, 2, 3] && (60...140).contains(flips))
    // Turning one augmentation off leaves the others' choices as they were.
    var noFlip = options
    noFlip.flipXProbability = 0
    var d = SplitMix64(seed: 7), e = SplitMix64(seed: 7)
    var p = options.draw(&d)
    p.flipX = false
    #expect(noFlip.draw(&e) == p)
  }

  @Test func badOptionsNameTheirField() {
    var o = AugmentationOptions.all
    o.elasticProbability = 1.5
    #expect { try o.validate() } throws: { ($0 as? SettingError)?.setting == .elasticProbability }
    o = AugmentationOptions.all
    o.maxCropFraction = 0.5
    #expect { try o.validate() } throws: { ($0 as? SettingError)?.setting == .maxCropFraction }
    o = AugmentationOptions.all
    o.elasticGrid = 1
    #expect { try o.validate() } throws: { ($0 as? SettingError)?.setting == .elasticGrid }
  }
}
