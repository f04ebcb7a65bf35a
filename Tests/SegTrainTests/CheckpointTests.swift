import Foundation
import SegCore
import SegData
import SegNN
import SegTestSupport
import SegTrain
import Testing

// MARK: - Helpers

/// A fresh empty directory under the system's temporary directory.
func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("segtrain-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// One tensor of every dtype, with edge values, plus a scalar and an empty tensor.
let everyDType: [String: HostTensor] = [
  "a.f64": HostTensor(type: TensorType([2, 2], .f64), doubles: [1.5, -2.25, 1e300, -0.0]),
  "b.f32": HostTensor(type: TensorType([2, 3], .f32), doubles: [0.1, -3.5, 7, 1e-20, 3.4e38, -1]),
  "c.f16": HostTensor(type: TensorType([4], .f16), doubles: [0.5, -65504, 1e-4, 3]),
  "d.bf16": HostTensor(type: TensorType([2, 2], .bf16), doubles: [1, -2, 3.140625, 1e30]),
  "e.i32": HostTensor(type: TensorType([4], .i32), doubles: [Double(Int32.min), -1, 0, Double(Int32.max)]),
  "f.u8": HostTensor(type: TensorType([1, 4], .u8), doubles: [0, 1, 128, 255]),
  "g.scalar": HostTensor(type: TensorType([], .f32), doubles: [42]),
  "h.empty": HostTensor(type: TensorType([0, 3], .f32), doubles: []),
]

func expectSame(_ a: [String: HostTensor], _ b: [String: HostTensor], sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(a.keys.sorted() == b.keys.sorted(), sourceLocation: sourceLocation)
  for (name, t) in a {
    guard let u = b[name] else { continue }
    #expect(t.type == u.type, "\(name)", sourceLocation: sourceLocation)
    #expect(t.doubles.map(\.bitPattern) == u.doubles.map(\.bitPattern), "\(name)", sourceLocation: sourceLocation)
  }
}

/// Expects `body` to throw an error whose text names `file` and contains `words`.
func expectFileError(_ file: URL, _ words: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
  #expect(sourceLocation: sourceLocation) { try body() } throws: { error in
    "\(error)".contains(file.path) && "\(error)".contains(words)
  }
}

/// A safetensors file from a JSON header and data bytes, with the header length written as given.
func rawFile(_ header: String, data: [UInt8], length: UInt64? = nil) -> Data {
  let json = Array(header.utf8)
  var out = Data()
  withUnsafeBytes(of: (length ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
  return out + json + data
}

// MARK: - Format

@Suite struct SafeTensorsTests {
  @Test func everyDTypeRoundTrips() throws {
    let bytes = try SafeTensors.encode(everyDType, metadata: ["note": "round \"trip\"/ü"])
    let (tensors, metadata) = try SafeTensors.decode(bytes, file: "mem")
    expectSame(everyDType, tensors)
    #expect(metadata == ["note": "round \"trip\"/ü"])
    // A slice whose indices do not start at 0 decodes the same.
    expectSame(everyDType, try SafeTensors.decode((Data([9]) + bytes).dropFirst(), file: "mem").tensors)
    // Header padded so the data starts 8-byte aligned.
    let n = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    #expect(n % 8 == 0)
  }

  @Test func corruptFilesAreRejectedNamingTheFile() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let good = try SafeTensors.encode(["w": HostTensor(type: TensorType([2], .f32), doubles: [1, 2])])
    let f32x2 = #""dtype":"F32","shape":[2]"#
    let cases: [(String, Data, String)] = [
      ("short", Data([1, 2, 3]), "truncated"),
      ("length-too-big", Data(withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) }) + good.dropFirst(8), "header length"),
      ("length-too-small", rawFile(#"{"w":{\#(f32x2),"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8), length: 10), "not valid JSON"),
      ("not-json", rawFile("{nope", data: []), "not valid JSON"),
      ("not-object", rawFile("[1,2]", data: []), "corrupt header"),
      ("bad-shape", rawFile(#"{"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)), "w.shape"),
      ("fraction", rawFile(#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)), "not an integer"),
      ("no-offsets", rawFile(#"{"w":{\#(f32x2)}}"#, data: .init(repeating: 0, count: 8)), "missing \"data_offsets\""),
      ("bad-dtype", rawFile(#"{"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)), "unsupported dtype"),
      ("bad-metadata", rawFile(#"{"__metadata__":{"k":1}}"#, data: []), "__metadata__"),
      ("truncated-data", good.dropLast(4), "truncated"),
      ("byte-count", rawFile(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)), "needs 12 bytes"),
      ("overlap", rawFile(#"{"a":{\#(f32x2),"data_offsets":[0,8]},"b":{\#(f32x2),"data_offsets":[4,12]}}"#, data: .init(repeating: 0, count: 12)), "overlaps"),
      ("hole", rawFile(#"{"a":{\#(f32x2),"data_offsets":[4,12]}}"#, data: .init(repeating: 0, count: 12)), "belong to no tensor"),
      ("trailing", good + Data([0, 0]), "after the last tensor"),
      ("reversed", rawFile(#"{"a":{\#(f32x2),"data_offsets":[8,0]}}"#, data: .init(repeating: 0, count: 8)), "data_offsets"),
    ]
    for (name, bytes, words) in cases {
      let url = dir.appendingPathComponent(name + ".safetensors")
      try bytes.write(to: url)
      expectFileError(url, words) { _ = try SafeTensors.read(from: url) }
    }
    let missing = dir.appendingPathComponent("missing.safetensors")
    expectFileError(missing, "cannot be read") { _ = try SafeTensors.read(from: missing) }
  }

  @Test func failedWritesLeaveTheOldFileAndNoTemporaries() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("w.safetensors")
    let old = ["w": HostTensor(type: TensorType([2], .f32), doubles: [1, 2])]
    try SafeTensors.write(old, to: url)
    // Encoding fails: nothing is touched.
    expectFileError(url, "reserved") { try SafeTensors.write(["__metadata__": old["w"]!], to: url) }
    expectSame(old, try SafeTensors.read(from: url).tensors)
    // The rename fails (the target is a non-empty directory) after the temporary was written.
    let blocked = dir.appendingPathComponent("blocked.safetensors")
    try FileManager.default.createDirectory(at: blocked, withIntermediateDirectories: false)
    try Data([7]).write(to: blocked.appendingPathComponent("keep"))
    expectFileError(blocked, "rename") { try SafeTensors.write(old, to: blocked) }
    #expect(try Data(contentsOf: blocked.appendingPathComponent("keep")) == Data([7]))
    // The parent is a file: no temporary can be created.
    let underFile = url.appendingPathComponent("x.safetensors")
    expectFileError(underFile, "temporary") { try SafeTensors.write(old, to: underFile) }
    // A successful overwrite replaces the contents.
    let new = ["w": HostTensor(type: TensorType([3], .f32), doubles: [3, 4, 5])]
    try SafeTensors.write(new, to: url)
    expectSame(new, try SafeTensors.read(from: url).tensors)
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    #expect(names == ["blocked.safetensors", "w.safetensors"], "temporaries left behind: \(names)")
  }

  @Test(.enabled(if: geteuid() != 0, "root ignores directory permissions"))
  func readOnlyDirectoryKeepsTheOldFile() throws {
    let dir = try temporaryDirectory()
    defer {
      chmod(dir.path, 0o755)
      try? FileManager.default.removeItem(at: dir)
    }
    let url = dir.appendingPathComponent("w.safetensors")
    let old = ["w": HostTensor(type: TensorType([2], .f32), doubles: [1, 2])]
    try SafeTensors.write(old, to: url)
    chmod(dir.path, 0o555)
    expectFileError(url, "temporary") { try SafeTensors.write(["w": HostTensor(type: TensorType([1], .f32), doubles: [9])], to: url) }
    expectSame(old, try SafeTensors.read(from: url).tensors)
  }
}

// MARK: - Checkpoints

@Suite struct CheckpointTests {
  static func tinyConfig(baseFilters: Int = 2) -> UNetConfig {
    var c = UNetConfig()
    c.baseFilters = baseFilters
    c.depth = 1
    c.padding = .same
    c.inputSize = 8
    return c
  }

  static func trainer(seed: UInt64, config: UNetConfig = tinyConfig()) throws -> Trainer {
    var options = TrainingOptions()
    options.learningRate = 1e-2
    return Trainer(
      model: try UNet(config: config, seed: seed, on: ReferenceBackend.shared), optimizer: Adam(learningRate: options.learningRate),
      options: options)
  }

  static func batch(_ step: Int) throws -> (Tensor, Tensor) {
    try pipelineBatch(SyntheticEM.generate(count: 1, size: 16, seed: 3), config: tinyConfig(), size: 1, seed: 5, step: step)
  }

  static func hosts(_ model: UNet) throws -> [String: HostTensor] {
    try Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, try $0.value.host()) })
  }

  @Test func restoresWeightsMomentsAndSteps() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let a = try CheckpointTests.trainer(seed: 1)
    for s in 0..<2 {
      let (x, y) = try CheckpointTests.batch(s)
      _ = try a.step(images: x, targets: y)
    }
    let url = dir.appendingPathComponent("ckpt.safetensors")
    try Checkpoint(model: a.model, optimizer: a.optimizer, step: 2).save(to: url)

    let b = try CheckpointTests.trainer(seed: 2)
    let loaded = try Checkpoint.load(from: url)
    #expect(loaded.step == 2 && loaded.adamStep == 2 && loaded.precision == "fp32")
    #expect(loaded.config == CheckpointTests.tinyConfig())
    try loaded.apply(to: b.model, optimizer: b.optimizer)
    expectSame(try CheckpointTests.hosts(a.model), try CheckpointTests.hosts(b.model))
    #expect(b.optimizer.step == 2)
    #expect(b.optimizer.moments.count == a.model.parameters.count)
    for (name, mv) in a.optimizer.moments {
      let restored = try #require(b.optimizer.moments[name])
      expectSame(["m": try mv.m.host(), "v": try mv.v.host()], ["m": try restored.m.host(), "v": try restored.v.host()])
    }
    // The state is complete: one more step from either gives the same weights.
    let (x, y) = try CheckpointTests.batch(2)
    _ = try a.step(images: x, targets: y)
    _ = try b.step(images: x, targets: y)
    expectSame(try CheckpointTests.hosts(a.model), try CheckpointTests.hosts(b.model))
  }

  @Test func mismatchedModelsAreRejected() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let a = try CheckpointTests.trainer(seed: 1)
    let url = dir.appendingPathComponent("ckpt.safetensors")
    try Checkpoint(model: a.model, optimizer: a.optimizer).save(to: url)
    let loaded = try Checkpoint.load(from: url)

    let wide = try CheckpointTests.trainer(seed: 1, config: CheckpointTests.tinyConfig(baseFilters: 4))
    let before = try CheckpointTests.hosts(wide.model)
    expectFileError(url, "baseFilters: checkpoint 2, model 4") { try loaded.apply(to: wide.model, optimizer: wide.optimizer) }
    expectSame(before, try CheckpointTests.hosts(wide.model))

    var reshaped = loaded
    reshaped.weights["head.bias"] = HostTensor(type: TensorType([3], .f32), doubles: [0, 0, 0])
    expectFileError(url, "head.bias") { try reshaped.apply(to: a.model, optimizer: a.optimizer) }
    var extra = loaded
    extra.weights["stray"] = reshaped.weights["head.bias"]
    expectFileError(url, "stray") { try extra.apply(to: a.model, optimizer: a.optimizer) }
    var missing = loaded
    missing.weights["head.kernel"] = nil
    expectFileError(url, "head.kernel") { try missing.apply(to: a.model, optimizer: a.optimizer) }
    var noMoments = loaded
    noMoments.adamStep = 3
    expectFileError(url, "Adam moments") { try noMoments.apply(to: a.model, optimizer: a.optimizer) }
  }

  @Test func otherSafetensorsFilesAreNotCheckpoints() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("plain.safetensors")
    try SafeTensors.write(everyDType, to: url)
    expectFileError(url, "not a U-Net checkpoint") { _ = try Checkpoint.load(from: url) }
    try SafeTensors.write([:], metadata: ["format": "unetseg-checkpoint", "format_version": "99"], to: url)
    expectFileError(url, "format version 99") { _ = try Checkpoint.load(from: url) }
  }
}

// MARK: - Python's safetensors

/// Runs the tests' python3 (`TestPython`) with `arguments`; nil if it cannot start or fails.
func python(_ arguments: [String]) -> Data? {
  let run = TestPython.run(arguments)
  return run.status == 0 ? run.output : nil
}

let pythonHasSafetensors = python(["-c", "import numpy, safetensors.numpy; safetensors.deserialize"]) != nil

/// Loads our files with Python's safetensors (load_file for numpy's dtypes, deserialize for BF16,
/// which numpy lacks), prints what it read (values as exact hexadecimal floats: Foundation's JSON
/// parser can be off by an ulp), and writes a file of its own for us to read.
let interopScript = """
  import json, sys, numpy as np, safetensors
  from safetensors import safe_open
  from safetensors.numpy import load_file, save_file
  hexes = lambda a: [x.hex() for x in a.reshape(-1).astype(np.float64).tolist()]
  out = {}
  for k, a in load_file(sys.argv[1]).items():
      out[k] = {"dtype": str(a.dtype), "shape": list(a.shape), "values": hexes(a)}
  with safe_open(sys.argv[1], "np") as f:
      out["__metadata__"] = f.metadata()
  for k, t in safetensors.deserialize(open(sys.argv[2], "rb").read()):
      v = (np.frombuffer(bytes(t["data"]), dtype="<u2").astype(np.uint32) << 16).view(np.float32)
      out[k] = {"dtype": t["dtype"], "shape": list(t["shape"]), "values": hexes(v)}
  save_file({"py.f32": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5, "py.i32": np.array([-7, 8], np.int32),
             "py.u8": np.array([255], np.uint8)}, sys.argv[3], metadata={"from": "python"})
  print(json.dumps(out))
  """

@Suite struct SafeTensorsPythonTests {
  @Test(.enabled(if: pythonHasSafetensors, "needs Python with numpy and safetensors: run `bash scripts/setup.sh --tests`"))
  func pythonReadsOurFilesAndWeReadItsFiles() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let (main, bf16, theirs) = (dir.appendingPathComponent("main.safetensors"), dir.appendingPathComponent("bf16.safetensors"), dir.appendingPathComponent("py.safetensors"))
    try SafeTensors.write(everyDType.filter { $0.value.dtype != .bf16 }, metadata: ["config": "{\"a\": 1}"], to: main)
    try SafeTensors.write(everyDType.filter { $0.value.dtype == .bf16 }, to: bf16)
    let output = try #require(python(["-c", interopScript, main.path, bf16.path, theirs.path]), "the python script failed")
    let read = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
    #expect(read["__metadata__"] as? [String: String] == ["config": "{\"a\": 1}"])
    let numpyName: [DType: String] = [.f64: "float64", .f32: "float32", .f16: "float16", .i32: "int32", .u8: "uint8", .bf16: "BF16"]
    for (name, t) in everyDType {
      let entry = try #require(read[name] as? [String: Any], "python did not read \(name)")
      #expect(entry["dtype"] as? String == numpyName[t.dtype], "\(name)")
      #expect(entry["shape"] as? [Int] == t.shape.dims, "\(name)")
      #expect((entry["values"] as? [String])?.map { Double($0) } == t.doubles, "\(name)")
    }
    let (tensors, metadata) = try SafeTensors.read(from: theirs)
    #expect(metadata == ["from": "python"])
    expectSame(tensors, [
      "py.f32": HostTensor(type: TensorType([2, 3], .f32), doubles: [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]),
      "py.i32": HostTensor(type: TensorType([2], .i32), doubles: [-7, 8]),
      "py.u8": HostTensor(type: TensorType([1], .u8), doubles: [255]),
    ])
  }
}
