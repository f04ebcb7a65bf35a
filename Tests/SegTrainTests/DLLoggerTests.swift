import Foundation
import SegTrain
import Testing

@Suite struct DLLoggerTests {
  /// The records of a DLLogger file, each parsed after its "DLLL " prefix.
  static func records(_ url: URL) throws -> [[String: Any]] {
    let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
    return try lines.map { line in
      #expect(line.hasPrefix("DLLL {"))
      let object = try JSONSerialization.jsonObject(with: Data(line.dropFirst(5).utf8))
      return try #require(object as? [String: Any], "not an object: \(line)")
    }
  }

  @Test func linesAreDLLoggerJSON() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("log.json")
    var clock = Date(timeIntervalSince1970: 1_700_000_000.25)
    let logger = try DLLogger(
      url: url,
      parameters: ["batch_size": 8, "learning_rate": 1e-4, "augment": true, "model_dir": "/tmp/\"m\"\n", "fold": .null],
      now: { clock })
    clock += 1.5
    try logger.log(step: [100], data: ["train_ce_loss": 0.5, "train_dice_loss": .double(0.25), "step_count": 3])
    try logger.metadata(metric: "throughput_train", ["unit": "images/s"])
    try logger.log(step: [], data: ["eval_dice_score": 0.875])

    let r = try DLLoggerTests.records(url)
    try #require(r.count == 4)
    for record in r {
      for key in ["timestamp", "datetime", "elapsedtime"] { #expect(record[key] is String, "\(key) in \(record)") }
      let datetime = try #require(record["datetime"] as? String)
      #expect(datetime.wholeMatch(of: #/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}/#) != nil, "\(datetime)")
    }
    #expect(r[0]["type"] as? String == "LOG")
    #expect(r[0]["step"] as? String == "PARAMETER")
    #expect(r[0]["timestamp"] as? String == "1700000000.25")
    #expect(r[0]["elapsedtime"] as? String == "0.0")
    let parameters = try #require(r[0]["data"] as? [String: Any])
    #expect(parameters["batch_size"] as? Int == 8)
    #expect(parameters["learning_rate"] as? Double == 1e-4)
    #expect(parameters["augment"] as? Bool == true)
    #expect(parameters["model_dir"] as? String == "/tmp/\"m\"\n")
    #expect(parameters["fold"] is NSNull)

    #expect(r[1]["step"] as? [Int] == [100])
    #expect(r[1]["elapsedtime"] as? String == "1.5")
    let data = try #require(r[1]["data"] as? [String: Any])
    #expect(data["train_ce_loss"] as? Double == 0.5 && data["train_dice_loss"] as? Double == 0.25 && data["step_count"] as? Int == 3)
    #expect(r[2]["type"] as? String == "METADATA")
    #expect(r[2]["metric"] as? String == "throughput_train")
    #expect(r[2]["metadata"] as? [String: String] == ["unit": "images/s"])
    #expect(r[3]["step"] as? [Int] == [])
    #expect((r[3]["data"] as? [String: Any])?["eval_dice_score"] as? Double == 0.875)
  }

  @Test func appendsAndWritesThroughEachLine() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("log.json")
    let first = try DLLogger(url: url, parameters: ["run": 1])
    try first.log(step: [1], data: ["loss": 1])
    // Visible before the logger is closed.
    #expect(try DLLoggerTests.records(url).count == 2)
    let second = try DLLogger(url: url)
    try second.log(step: [2], data: ["loss": 0.5])
    let r = try DLLoggerTests.records(url)
    #expect(r.map { $0["step"] as? [Int] } == [nil, [1], [2]])
  }

  @Test func unwritablePathsAreErrorsNamingThem() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("missing/log.json")
    #expect { try DLLogger(url: url) } throws: { "\($0)".contains(url.path) }
  }
}
