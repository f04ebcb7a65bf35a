import SegCore

// MARK: - The CUDA backend's tracer

extension CUDABackend: ActivityTracingBackend {
  /// CUPTI's tracer of this GPU's work, loaded from where the driver was found (an error naming
  /// libcupti and how to install it when it is missing, so `--profile` waits after each op
  /// instead and says why); nil on the host emulator and the null device, which queue nothing.
  public func makeActivityTracer() throws -> (any DeviceActivityTracer)? {
    guard let gpu = device as? GPUKernelDevice else { return nil }
    guard activityTracing else { throw CUDAError(.invalidSetting, "UNET_CUPTI=0 turns CUPTI off") }
    let control = try CUPTIControl(api: try CUPTIAPI.load(gpu.context.driver.loader))
    return CUPTITracer(control: control) { [unowned self] in try self.synchronize() }
  }
}
