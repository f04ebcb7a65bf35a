// MARK: - Device descriptions for plans without a GPU

/// cuDNN device descriptions (the JSON of a DEVICEPROP descriptor) of the GPUs our plans are built
/// for in tests. HAND-WRITTEN from the cards' published properties (SMs, shared memory, L2, clocks),
/// not dumped from a GPU: replace each with the `cudnnDevice` JSON that `unet doctor --output`
/// writes on the real card. cuDNN 9.11 and later accept them; 9.28 also wants memoryBusWidth.
enum CuDNNDeviceFixtures {
  /// An H200 (sm_90): 132 SMs, 232,448 bytes of opt-in shared memory per block, 50 MiB of L2.
  static let h200 = description(
    name: "NVIDIA H200", version: 900, sms: 132, sharedOptin: 232_448, l2: 50 << 20, smClock: 1_980_000,
    memClock: 3_201_000, busWidth: 6144, memory: 150_754_820_096)

  /// An A100 80GB (sm_80): 108 SMs, 166,912 bytes of opt-in shared memory per block, 40 MiB of L2.
  static let a100 = description(
    name: "NVIDIA A100-SXM4-80GB", version: 800, sms: 108, sharedOptin: 166_912, l2: 40 << 20, smClock: 1_410_000,
    memClock: 1_593_000, busWidth: 5120, memory: 85_031_714_816)

  /// Both, sm_80 first.
  static let all = [a100, h200]

  private static func description(
    name: String, version: Int, sms: Int, sharedOptin: Int, l2: Int, smClock: Int, memClock: Int, busWidth: Int, memory: Int
  ) -> String {
    """
    {"maxGridSize":[2147483647,65535,65535],"maxBlockSize":[1024,1024,64],"regsPerBlock":65536,\
    "multiProcessorCount":\(sms),"smCountOrigin":0,"warpSize":32,"maxSharedMemoryPerBlock":49152,\
    "maxSharedMemoryPerBlockOptin":\(sharedOptin),"oversizedSharedMemoryPerBlock":0,"reservedSharedMemoryPerBlock":1024,\
    "maxRegistersPerSM":65536,"maxCtasPerSM":32,"maxThreadsPerBlock":1024,"maxThreadsPerSM":2048,"pciDeviceId":0,\
    "isTccDriver":0,"supportCoopLaunch":1,"smClockRateKHz":\(smClock),"memClockRateKHz":\(memClock),\
    "memoryBusWidth":\(busWidth),"l2CacheSize":\(l2),"deviceName":"\(name)","deviceVer":\(version),"driverVer":13000,\
    "totalGlobalMem":\(memory),"cudaDeviceId":0,"cudnnVersion":92801,"schemaVersion":1}
    """
  }
}
