import Foundation
import SegData
import Testing

// MARK: - RGB images with several classes

@Suite(.serialized) struct MultiClassCLITests {
  /// A folder data set of 40x40 RGB images whose three classes are told apart by colour: class
  /// c's pixels are mostly channel c, with a texture; plus one RGB test image of an odd size.
  static func writeRGBSet(_ data: URL) throws {
    for sub in ["images", "masks", "test"] {
      try FileManager.default.createDirectory(at: data.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    func image(_ w: Int, _ h: Int, seed: Int) -> (Image, [UInt16]) {
      var rgb = [UInt16](repeating: 0, count: w * h * 3), mask = [UInt16](repeating: 0, count: w * h)
      for y in 0..<h {
        for x in 0..<w {
          let c = ((x + seed * 7) / 9 + (y + seed * 3) / 13) % 3, k = y * w + x
          mask[k] = UInt16(c)
          for ch in 0..<3 { rgb[3 * k + ch] = UInt16(ch == c ? 200 : 30) + UInt16((x * 5 + y * 3 + seed) % 40) }
        }
      }
      return (try! Image(width: w, height: h, channels: 3, bitDepth: 8, samples: rgb), mask)
    }
    for i in 0..<3 {
      let (rgb, mask) = image(40, 40, seed: i)
      try ImageFile.write(rgb, to: data.appendingPathComponent("images/r\(i).png"))
      try ImageFile.write(Image(width: 40, height: 40, channels: 1, bitDepth: 8, samples: mask), to: data.appendingPathComponent("masks/r\(i).png"))
    }
    try ImageFile.write(image(37, 29, seed: 5).0, to: data.appendingPathComponent("test/odd.png"))
  }

  @Test func rgbThreeClassFolderTrainsEvaluatesAndPredicts() throws {
    let root = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let data = root.appendingPathComponent("data")
    try MultiClassCLITests.writeRGBSet(data)
    let model = root.appendingPathComponent("model").path

    // --input-channels is not given: the RGB files decide, and the checkpoint keeps it.
    let train = try unet(["train", "--exec-mode", "train", "--data-dir", data.path, "--model-dir", model, "--max-steps", "2",
                          "--batch-size", "2", "--classes", "3", "--augment"] + tinyModel)
    #expect(train.status == 0, "\(train.output)")
    #expect(train.output.contains("3 training slices"), "\(train.output)")

    let report = root.appendingPathComponent("eval.json")
    let evaluate = try unet(["evaluate", "--data-dir", data.path, "--model-dir", model, "--output", report.path])
    #expect(evaluate.status == 0, "\(evaluate.output)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
    #expect((json?["per_class"] as? [Any])?.count == 3, "\(String(describing: json))")
    #expect((json?["per_image"] as? [Any])?.count == 3 && json?["classes"] as? Int == 3)

    // The checkpoint's model takes RGB: asking for gray is refused, naming the checkpoint.
    let gray = try unet(["evaluate", "--data-dir", data.path, "--model-dir", model, "--input-channels", "1"])
    #expect(gray.status != 0 && gray.output.contains("checkpoint"), "\(gray.output)")

    let predict = try unet(["predict", "--data-dir", data.path, "--model-dir", model])
    #expect(predict.status == 0, "\(predict.output)")
    let mask = try ImageFile.read(contentsOf: root.appendingPathComponent("model/predictions/odd-mask.png"))
    #expect(mask.width == 37 && mask.height == 29 && mask.channels == 1)
    #expect(Set(mask.samples).isSubset(of: [0, 1, 2]), "\(Set(mask.samples))")

    // Files: an RGB image as it is, and a gray one copied into RGB for the RGB model.
    let grayFile = root.appendingPathComponent("gray.png")
    try ImageFile.write(Image(width: 33, height: 21, channels: 1, bitDepth: 8, samples: (0..<33 * 21).map { UInt16($0 % 251) }), to: grayFile)
    let out = root.appendingPathComponent("out")
    let files = try unet(["predict", "--model-dir", model, "--input", data.appendingPathComponent("images/r1.png").path, grayFile.path,
                          "--output", out.path, "--probabilities"])
    #expect(files.status == 0, "\(files.output)")
    let r1 = try ImageFile.read(contentsOf: out.appendingPathComponent("r1-mask.png"))
    #expect(r1.width == 40 && Set(r1.samples).isSubset(of: [0, 1, 2]))
    let overlay = try ImageFile.read(contentsOf: out.appendingPathComponent("gray-overlay.png"))
    #expect(overlay.channels == 3 && overlay.width == 33 && overlay.height == 21)
    let probabilities = try TIFF.readImages(contentsOf: out.appendingPathComponent("r1-probabilities.tif"))
    #expect(probabilities.count == 3)
  }
}
