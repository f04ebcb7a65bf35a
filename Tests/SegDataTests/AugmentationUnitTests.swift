import Foundation
import SegCore
@testable import SegData
import Testing

// MARK: - The list and each augmentation on its own

@Suite struct AugmentationUnitTests {
  // MARK: Lists

  @Test func listsParseToSetsAndBack() throws {
    #expect(try AugmentationKind.parseList("flip,zoom") == [.flip, .zoom])
    #expect(try AugmentationKind.parseList(" Noise , flip,noise") == [.flip, .noise], "spaces, case and repeats")
    #expect(try AugmentationKind.parseList("none") == [])
    #expect(try AugmentationKind.parseList("default") == AugmentationKind.defaultSet)
    #expect(try AugmentationKind.parseList("default,noise") == AugmentationKind.defaultSet.union([.noise]))
    #expect(AugmentationKind.list([.elastic, .flip, .brightness]) == "flip,brightness,elastic", "canonical order")
    #expect(AugmentationKind.list([]) == "none")
    let all = AugmentationKind.list(Set(AugmentationKind.allCases))
    #expect(try AugmentationKind.parseList(all) == Set(AugmentationKind.allCases))
    #expect(AugmentationOptions().kinds == AugmentationKind.defaultSet && AugmentationOptions.none.isEmpty)
  }

  @Test func badListsNameTheEntryAndTheValidNames() {
    for (text, fragment) in [("flip,spin", "unknown augmentation \"spin\""), ("flip,,zoom", "an empty name"), ("", "an empty name"),
                             ("none,flip", "\"none\" cannot be combined")] {
      #expect { try AugmentationKind.parseList(text) } throws: { error in
        guard let e = error as? SettingError, e.setting == .augmentations, e.value == text else { return false }
        let message = "\(e)"
        return message.contains(fragment) && (fragment.hasPrefix("\"none\"") || message.contains("flip, rot90, zoom, brightness, contrast, noise, elastic"))
      }
    }
  }

  @Test func geometricAndPhotometricKinds() {
    #expect(AugmentationKind.allCases.filter(\.isGeometric) == [.flip, .rot90, .zoom, .elastic])
  }

  // MARK: Drawing a subset

  /// Each augmentation alone sets only its own part of the plan, with the values the whole set
  /// draws for it from the same random stream.
  @Test func eachKindAloneDrawsItsPartOfTheFullPlan() {
    var all = AugmentationOptions(kinds: Set(AugmentationKind.allCases))
    (all.contrastProbability, all.noiseProbability, all.elasticProbability) = (1, 1, 1)
    for kind in AugmentationKind.allCases {
      var one = all
      one.kinds = [kind]
      for seed in UInt64(0)..<20 {
        var a = SplitMix64(seed: seed), b = SplitMix64(seed: seed)
        let full = all.draw(&a), alone = one.draw(&b)
        #expect(a.next() == b.next(), "\(kind): the same draws are consumed")
        var expected = AugmentationPlan()
        switch kind {
        case .flip: (expected.flipX, expected.flipY) = (full.flipX, full.flipY)
        case .rot90: expected.rotations = full.rotations
        case .zoom: expected.crop = full.crop
        case .brightness: expected.brightness = full.brightness
        case .contrast: expected.contrast = full.contrast
        case .noise: (expected.noiseStd, expected.noiseSeed) = (full.noiseStd, full.noiseSeed)
        case .elastic: expected.elastic = full.elastic
        }
        #expect(alone == expected, "\(kind) seed \(seed)")
      }
    }
  }

  // MARK: Geometric units

  @Test func geometricUnitsMapCentredPositions() {
    #expect(Flip(x: true, y: false).source(2, 3) == (-2, 3) && Flip(x: false, y: true).source(2, 3) == (2, -3))
    #expect(QuarterTurn(1).source(2, 3) == (-3, 2) && QuarterTurn(2).source(2, 3) == (-2, -3))
    #expect(QuarterTurn(3).source(2, 3) == (3, -2) && QuarterTurn(-1).source(2, 3) == (3, -2) && QuarterTurn(4).source(2, 3) == (2, 3))
    // A 5-pixel frame trimmed by 0.25 on the left: centred column u reads 0.75 u + 0.5.
    let zoom = Zoom(CropBox(left: 0.25), frameHeight: 5, frameWidth: 5)
    #expect(zoom.source(-2, 1) == (-1, 1) && zoom.source(2, 1) == (2, 1))
  }

  // MARK: Photometric units

  @Test func photometricUnitsChangeValuesOnly() {
    let tile = ImageTile(height: 1, width: 2, channels: 2, values: [0.2, -1, 0.6, 0])
    let contrast = Contrast(factor: 2, of: tile)
    #expect(zip(contrast.means, [0.4, -0.5]).allSatisfy { abs($0 - $1) < 1e-7 })
    #expect(abs(contrast.apply(0.2, channel: 0) - 0) < 1e-7 && abs(contrast.apply(0, channel: 1) - 0.5) < 1e-7)
    #expect(Contrast(factor: 1, of: tile).means == [0, 0], "nothing to scale about")
    #expect(Brightness(delta: 0.25).apply(0.5) == 0.75)
    var quiet = Noise(std: 0, seed: 1)
    #expect(quiet.apply(0.3) == 0.3)
    var a = Noise(std: 0.5, seed: 7), b = Noise(std: 0.5, seed: 7), c = Noise(std: 0.5, seed: 8)
    let (x, y, z) = ((0..<8).map { _ in a.apply(0) }, (0..<8).map { _ in b.apply(0) }, (0..<8).map { _ in c.apply(0) })
    #expect(x == y && x != z && Set(x).count == 8, "seeded, and both Box-Muller outputs used")
  }

  /// A plan's photometric part leaves the label, and the geometry of the image, as the plan's
  /// geometric part alone makes them: it only changes the values after the move.
  @Test func photometricAugmentationsTouchTheImageOnly() {
    var o = AugmentationOptions()
    (o.contrastProbability, o.noiseProbability, o.elasticProbability) = (1, 1, 1)
    var rng = SplitMix64(seed: 12)
    let (img, lab) = randomTiles(12, 12, channels: 2, classes: 4, seed: 13)
    for _ in 0..<10 {
      let p = o.draw(&rng)
      var geometric = p
      (geometric.brightness, geometric.contrast, geometric.noiseStd) = (0, 1, 0)
      var photometric = AugmentationPlan()
      (photometric.brightness, photometric.contrast, photometric.noiseStd, photometric.noiseSeed) = (p.brightness, p.contrast, p.noiseStd, p.noiseSeed)
      let both = Augmentation.apply(p, image: img, label: lab), moved = Augmentation.apply(geometric, image: img, label: lab)
      #expect(both.label == moved.label)
      #expect(both.image == Augmentation.apply(photometric, image: moved.image))
      #expect(Augmentation.apply(photometric, image: img, label: lab).label == lab)
    }
  }

  // MARK: Records

  @Test func recordsRoundTripAndFillMissingFieldsWithDefaults() throws {
    var o = AugmentationOptions(kinds: [.zoom, .noise])
    (o.maxCropFraction, o.maxNoiseStd, o.contrastRange, o.elasticGrid, o.interpolation) = (0.1, 0.02, 0.5...2, 4, .bicubic)
    let json = try JSONEncoder().encode(o)
    #expect(try JSONDecoder().decode(AugmentationOptions.self, from: json) == o)
    let short = try JSONDecoder().decode(AugmentationOptions.self, from: Data(#"{"augmentations": ["flip"], "noise_std": 0.1}"#.utf8))
    var expected = AugmentationOptions(kinds: [.flip])
    expected.maxNoiseStd = 0.1
    #expect(short == expected)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(AugmentationOptions.self, from: Data(#"{"augmentations": ["spin"]}"#.utf8)) }
    #expect(throws: DecodingError.self) {
      try JSONDecoder().decode(AugmentationOptions.self, from: Data(#"{"augmentations": [], "contrast_range": [2, 1]}"#.utf8))
    }
  }

  @Test func magnitudesOutOfRangeNameTheirField() {
    let cases: [(Setting, (inout AugmentationOptions) -> Void)] = [
      (.maxBrightnessDelta, { $0.maxBrightnessDelta = 2.5 }), (.maxBrightnessDelta, { $0.maxBrightnessDelta = .nan }),
      (.maxNoiseStd, { $0.maxNoiseStd = -0.1 }), (.contrastRange, { $0.contrastRange = -1...1 }),
      (.elasticSigma, { $0.elasticSigma = .infinity }), (.elasticGrid, { $0.elasticGrid = 33 }), (.maxCropFraction, { $0.maxCropFraction = -0.1 }),
    ]
    for (setting, edit) in cases {
      var o = AugmentationOptions()
      edit(&o)
      #expect { try o.validate() } throws: { ($0 as? SettingError)?.setting == setting }
    }
  }
}
