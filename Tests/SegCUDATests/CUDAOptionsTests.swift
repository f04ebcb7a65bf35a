import Foundation
import Testing

@testable import SegCUDA

// MARK: - Settings from the environment

@Suite struct CUDAOptionsTests {
  /// Nothing set: the usual library places, the fastest algorithms, the cache under $HOME.
  @Test func defaults() throws {
    let o = try CUDAOptions(environment: ["HOME": "/home/u"])
    #expect(o.cudaPath == nil && !o.deterministicConvolutions && o.activityTracing)
    #expect(o.kernelCacheDirectory?.path == "/home/u/.cache/unetseg/cubin")
    #expect(o.librarySearch.cudaPath == nil && o.pythons == PythonPackages.interpreters(environment: [:]))
  }

  @Test func everyVariableIsRead() throws {
    let o = try CUDAOptions(environment: [
      "UNET_CUDA_PATH": "/opt/a:/opt/b", "UNET_CUDNN_DETERMINISTIC": "1", "UNET_CUBIN_CACHE": "/tmp/cubins",
      "HOME": "/home/u", "PATH": "/opt/py/bin:/usr/bin",
    ])
    #expect(
      o == CUDAOptions(
        cudaPath: "/opt/a:/opt/b", deterministicConvolutions: true, kernelCacheDirectory: URL(fileURLWithPath: "/tmp/cubins"),
        cudnnPlanCacheDirectory: URL(fileURLWithPath: "/home/u/.cache/unetseg/cudnn-plans"),
        pythons: PythonPackages.interpreters(environment: ["PATH": "/opt/py/bin:/usr/bin"])))
    #expect(o.librarySearch.cudaPathFolders.prefix(3) == ["/opt/a", "/opt/a/lib64", "/opt/a/lib"])
  }

  /// UNET_CUPTI=0 makes --profile wait after every op; anything but 0 or 1 is refused, naming it.
  @Test func cuptiSwitch() throws {
    #expect(try !CUDAOptions(environment: ["UNET_CUPTI": "0"]).activityTracing)
    #expect(try CUDAOptions(environment: ["UNET_CUPTI": "1"]).activityTracing)
    #expect(throws: CUDAError.self) { try CUDAOptions(environment: ["UNET_CUPTI": "yes"]) }
    do { _ = try CUDAOptions(environment: ["UNET_CUPTI": "yes"]) } catch { #expect("\(error)".contains("UNET_CUPTI is 'yes'")) }
  }

  /// XDG_CACHE_HOME moves the cache; UNET_CUBIN_CACHE=off keeps it in memory; empty counts as unset.
  @Test func cacheFolder() throws {
    let xdg = try CUDAOptions(environment: ["XDG_CACHE_HOME": "/var/cache/u", "HOME": "/home/u"])
    #expect(xdg.kernelCacheDirectory?.path == "/var/cache/u/unetseg/cubin")
    #expect(try CUDAOptions(environment: ["UNET_CUBIN_CACHE": "off"]).kernelCacheDirectory == nil)
    let empty = try CUDAOptions(environment: ["UNET_CUBIN_CACHE": "", "UNET_CUDA_PATH": "", "UNET_CUDNN_DETERMINISTIC": "", "HOME": "/h"])
    #expect(
      empty
        == CUDAOptions(
          kernelCacheDirectory: URL(fileURLWithPath: "/h/.cache/unetseg/cubin"),
          cudnnPlanCacheDirectory: URL(fileURLWithPath: "/h/.cache/unetseg/cudnn-plans")))
    #expect(try CUDAOptions(environment: ["UNET_CUDNN_DETERMINISTIC": "0"]).deterministicConvolutions == false)
  }

  /// A value the variable does not take is an error naming the variable and what it takes.
  @Test(arguments: ["yes", "true", "2", " 1"])
  func invalidDeterminismIsAnError(_ value: String) throws {
    do {
      _ = try CUDAOptions(environment: ["UNET_CUDNN_DETERMINISTIC": value])
      Issue.record("UNET_CUDNN_DETERMINISTIC=\(value) was accepted")
    } catch let e as CUDAError {
      #expect(e.kind == .invalidSetting)
      #expect(e.message.contains("UNET_CUDNN_DETERMINISTIC is '\(value)'") && e.message.contains("set it to 1"))
    }
  }
}
