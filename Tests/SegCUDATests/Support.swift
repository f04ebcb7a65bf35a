import Foundation
import Testing

@testable import SegCUDA

// MARK: - What this machine has

/// The CUDA pieces a test may use, found once: NVRTC (from pip's nvidia-cuda-nvrtc, a toolkit or
/// UNET_CUDA_PATH) and the folder of our C header.
enum CUDATestEnvironment {
  /// The settings the test process's environment asks for (UNET_CUDA_PATH and the others), or why
  /// they are invalid.
  static let options = Result { try CUDAOptions(environment: ProcessInfo.processInfo.environment) }

  /// NVRTC's table, or nil when no libnvrtc is found (tests that need it are skipped).
  static let nvrtc: NVRTCAPI? = try? NVRTCAPI.load(CUDALoader(options: options.get()))

  /// Why NVRTC tests are skipped, for the test's comment.
  static let nvrtcMissing = "libnvrtc not found: run `bash scripts/setup.sh --tests` (pip package nvidia-cuda-nvrtc) to run the NVRTC tests"

  /// A compiler with a private cache folder.
  static func compiler(cache: URL? = nil) throws -> NVRTCCompiler? {
    guard let nvrtc else { return nil }
    return try NVRTCCompiler(api: nvrtc, cacheDirectory: cache)
  }

  /// Sources/CCUDA, where our header lives.
  static let headerFolder: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Sources/CCUDA")
}

/// A fresh temporary folder.
func temporaryFolder(_ prefix: String = "segcuda") throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Whether `bytes` contain `name` as a NUL-terminated string (how ELF string tables hold symbol names).
func containsSymbol(_ bytes: [UInt8], _ name: String) -> Bool {
  let needle = [0] + Array(name.utf8) + [0]
  guard bytes.count >= needle.count else { return false }
  let first = needle[1]
  var i = 0
  while i <= bytes.count - needle.count {
    if bytes[i + 1] == first && bytes[i] == 0 && Array(bytes[i..<(i + needle.count)]) == needle { return true }
    i += 1
  }
  return false
}
