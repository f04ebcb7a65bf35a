import Foundation
import Testing

@testable import SegCUDA

// MARK: - The graph API's settings

@Suite struct CuDNNGraphOptionsTests {
  /// The graph API is off unless UNET_CUDNN_GRAPH=1; its plans are kept beside the kernels' cache.
  @Test func graphPathAndPlanCache() throws {
    let o = try CUDAOptions(environment: ["HOME": "/home/u"])
    #expect(!o.cudnnGraph && o.cudnnPlanCacheDirectory?.path == "/home/u/.cache/unetseg/cudnn-plans")
    #expect(try CUDAOptions(environment: ["UNET_CUDNN_GRAPH": "0"]).cudnnGraph == false)
    #expect(try CUDAOptions(environment: ["UNET_CUDNN_GRAPH": "1"]).cudnnGraph == true)
    #expect(try CUDAOptions(environment: ["UNET_CUDNN_PLAN_CACHE": "off"]).cudnnPlanCacheDirectory == nil)
    #expect(try CUDAOptions(environment: ["UNET_CUDNN_PLAN_CACHE": "/tmp/p"]).cudnnPlanCacheDirectory?.path == "/tmp/p")
  }

  /// Another value is an error naming the variable and what it takes.
  @Test(arguments: ["yes", "on", "2"])
  func invalidGraphSettingIsAnError(_ value: String) throws {
    do {
      _ = try CUDAOptions(environment: ["UNET_CUDNN_GRAPH": value])
      Issue.record("UNET_CUDNN_GRAPH=\(value) was accepted")
    } catch let e as CUDAError {
      #expect(e.kind == .invalidSetting && e.message.contains("UNET_CUDNN_GRAPH is '\(value)'"))
    }
  }
}
