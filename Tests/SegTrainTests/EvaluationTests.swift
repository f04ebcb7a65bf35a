import Foundation
import SegCore
import SegData
import SegNN
import SegTrain
import Testing

@Suite struct EvaluationTests {
  /// A same-padded "model" of 4x4 tiles that says class 1 with probability 0.75 where the pixel is
  /// bright (> 127), else 0.25; for three classes, class 2 with 0.75 where it is 255.
  static func predictor(classes k: Int = 2) throws -> TiledPredictor {
    try TiledPredictor(inputTile: 4, outputTile: 4, inputChannels: 1, classes: k, batchSize: 2) { tiles in
      tiles.map { t in
        t.flatMap { v -> [Float] in
          if k == 2 { return v > 0 ? [0.25, 0.75] : [0.75, 0.25] }
          return v == 1 ? [0.125, 0.125, 0.75] : v > 0 ? [0.125, 0.75, 0.125] : [0.75, 0.125, 0.125]
        }
      }
    }
  }

  // Image "alpha.png" 2x2 predicts [1 1; 0 0] against [1 0; 0 0]; "beta.tif" 3x1 is right.
  static let images: [(name: String, image: GrayImage, classes: [Int32])] = [
    ("alpha.png", GrayImage(width: 2, height: 2, pixels: [255, 200, 0, 3]), [1, 0, 0, 0]),
    ("beta.tif", GrayImage(width: 3, height: 1, pixels: [0, 255, 10]), [0, 1, 0]),
  ]

  static func softDice(_ intersection: Double, _ denominator: Double) -> Double {
    (2 * intersection + diceSmoothing) / (denominator + diceSmoothing)
  }

  @Test func scoresAndJSONOfTwoImages() throws {
    let r = try evaluate(Self.predictor(), on: Self.images)
    #expect(r.perImage.map(\.name) == ["alpha.png", "beta.tif"] && r.perImage.map(\.index) == [0, 1])
    // alpha: class 1 TP 1, FP 1; class 0 TP 2, FN 1. beta: perfect.
    #expect(r.perImage[0].scores.perClassDice == [4.0 / 5, 2.0 / 3] && r.perImage[0].scores.perClassIoU == [2.0 / 3, 0.5])
    #expect(r.perImage[1].scores.perClassDice == [1, 1] && r.perImage[1].scores.perClassIoU == [1, 1])
    #expect(r.perImageDice == [2.0 / 3, 1])
    // Pooled: class 1 TP 2, FP 1; class 0 TP 4, FN 1.
    #expect(r.scores.perClassDice == [8.0 / 9, 4.0 / 5] && r.scores.perClassIoU == [4.0 / 5, 2.0 / 3])
    // Soft Dice per image and class: intersection sum(p t), denominator sum(p^2) + sum(t).
    let alpha = (Self.softDice(1.75, 4.25) + Self.softDice(0.75, 2.25)) / 2
    let beta = (Self.softDice(1.5, 3.1875) + Self.softDice(0.75, 1.6875)) / 2
    #expect(abs(r.perImage[0].softDice - alpha) <= 1e-12 && abs(r.perImage[1].softDice - beta) <= 1e-12)
    let ce = (-6 * log(0.75) - log(0.25)) / 7

    let json = try #require(JSONSerialization.jsonObject(with: r.jsonData()) as? [String: Any])
    for key in ["mean_dice", "mean_iou", "soft_dice", "per_image", "per_class", "cross_entropy", "classes", "images"] {
      #expect(json[key] != nil, "missing \(key)")
    }
    let number = { (key: String) in json[key] as? Double ?? .nan }
    #expect(abs(number("mean_dice") - 5.0 / 6) <= 1e-12)
    #expect(abs(number("mean_iou") - 0.75) <= 1e-12)
    #expect(abs(number("soft_dice") - (alpha + beta) / 2) <= 1e-12)
    #expect(abs(number("cross_entropy") - ce) <= 1e-7)
    #expect(abs(number("pooled_dice") - 0.8) <= 1e-12 && abs(number("pixel_accuracy") - 6.0 / 7) <= 1e-12)
    #expect(json["classes"] as? Int == 2 && json["images"] as? Int == 2)

    let perImage = try #require(json["per_image"] as? [[String: Any]])
    #expect(perImage.count == 2 && perImage[0]["name"] as? String == "alpha.png" && perImage[1]["index"] as? Int == 1)
    #expect(perImage[0]["dice"] as? [Double] == [0.8, 2.0 / 3] && perImage[0]["iou"] as? [Double] == [2.0 / 3, 0.5])
    #expect(perImage[1]["mean_dice"] as? Double == 1 && perImage[0]["mean_iou"] as? Double == 0.5)
    let perClass = try #require(json["per_class"] as? [[String: Any]])
    #expect(perClass.map { $0["class"] as? Int } == [0, 1])
    #expect(perClass.map { $0["true_pixels"] as? Int } == [5, 2] && perClass.map { $0["predicted_pixels"] as? Int } == [4, 3])
    #expect(perClass[1]["dice"] as? Double == 0.8 && perClass[0]["iou"] as? Double == 0.8)

    // The Codable form reads back as written.
    #expect(try JSONDecoder().decode(EvaluationJSON.self, from: r.jsonData()) == r.json)
  }

  @Test func tableNamesEveryImage() throws {
    let r = try evaluate(Self.predictor(), on: Self.images)
    let table = r.table()
    #expect(table.contains("alpha.png") && table.contains("beta.tif"))
    let rows = table.split(separator: "\n")
    #expect(rows.contains { $0.hasPrefix("alpha.png") && $0.contains("0.6667") && $0.contains("0.5000") })
    #expect(rows.contains { $0.hasPrefix("mean of 2 images") && $0.contains("0.8333") && $0.contains("0.7500") })
    #expect(rows.contains { $0.hasPrefix("all pixels pooled") && $0.contains("0.8000") })
    #expect(table.contains("soft Dice"))
  }

  @Test func multiClassLabelsAreClassIndices() throws {
    let images: [(name: String, image: GrayImage, classes: [Int32])] = [
      ("one", GrayImage(width: 3, height: 2, pixels: [0, 128, 255, 255, 128, 0]), [0, 1, 2, 2, 1, 1]),
    ]
    let r = try evaluate(Self.predictor(classes: 3), on: images)
    // Class 1: TP 2, FN 1 -> 4/5; class 2: TP 2 -> 1.
    #expect(r.classes == 3 && r.perImage[0].scores.perClassDice == [2.0 / 3, 0.8, 1])
    #expect(abs(r.meanDice - 0.9) <= 1e-12)
    let table = r.table(names: ["background", "membrane", "nucleus"])
    #expect(table.contains("Dice membrane") && table.contains("Dice nucleus") && table.contains("one"))
    #expect(r.json.perImage[0].dice.count == 3 && r.json.perClass.count == 3)

    let bad: [(name: String, image: GrayImage, classes: [Int32])] = [("bad.png", images[0].image, [0, 1, 3, 0, 0, 0])]
    #expect { try evaluate(Self.predictor(classes: 3), on: bad) } throws: { "\($0)".contains("bad.png: label 3 at x 2, y 0") }
    let short: [(name: String, image: GrayImage, classes: [Int32])] = [("short.png", images[0].image, [0, 1])]
    #expect { try evaluate(Self.predictor(classes: 3), on: short) } throws: { "\($0)".contains("short.png: 2 label pixels for a 3x2") }
  }

  @Test func slicesWithBinaryLabelsMatchTheNamedOverload() throws {
    var config = UNetConfig()
    (config.baseFilters, config.depth, config.padding, config.inputSize) = (2, 1, .same, 8)
    let model = try UNet(config: config, seed: 3, on: ReferenceBackend.shared)
    let slices = SyntheticEM.generate(count: 2, size: 12, seed: 1)
    let r = try evaluate(model, on: slices, batchSize: 2)
    let named = try evaluate(model, on: slices.enumerated().map { i, s in
      (name: "image \(i)", image: GrayImage(width: s.width, height: s.height, pixels: s.image),
       classes: s.label.map { Int32($0 == 255 ? 1 : 0) })
    }, batchSize: 2)
    #expect(r.json == named.json && r.perImage.map(\.name) == ["image 0", "image 1"])
    #expect(r.perImageDice.count == 2 && (0...1).contains(r.softDice) && r.crossEntropy > 0)
    let windowed = try evaluate(model, on: slices, batchSize: 2, window: SlidingWindow(overlap: 0.5, blending: .gaussian, tta: true))
    #expect(windowed.perImage.count == 2 && (0...1).contains(windowed.softDice))
  }
}
