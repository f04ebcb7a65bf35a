import SegCore

// MARK: - Arena

/// The CUDA backend's arena (`DeviceArena`): one device block from the caching allocator whose
/// regions are a replayed program's planned values, so that the program runs on fixed addresses
/// (what a captured graph needs) and allocates nothing for them.
final class CUDAArena: DeviceArena, @unchecked Sendable {
  let device: any KernelDevice
  let pointer: UInt64
  let byteCount: Int

  /// An arena of `bytes` bytes on `device`.
  init(device: any KernelDevice, bytes: Int) throws {
    (self.device, byteCount) = (device, bytes)
    pointer = try device.allocate(max(bytes, 1))
  }

  deinit { device.free(pointer) }
}

extension CUDABackend {
  /// One device block of `bytes` whose regions replayed kernels write their outputs into.
  public func makeArena(bytes: Int) throws -> (any DeviceArena)? { try CUDAArena(device: device, bytes: bytes) }

  /// A buffer's bytes and identity: its own block, or the arena region it was placed in (a kernel
  /// that returns its input as it is returns the same storage, which the plan sees as a view).
  public func footprint(of storage: any DeviceStorage) -> StorageFootprint? {
    guard let s = storage as? CUDAStorage else { return nil }
    return StorageFootprint(bytes: s.bytes, memory: ObjectIdentifier(s))
  }

  /// Row-major buffers concatenate as their bytes in turn when every axis before `axis` has
  /// extent 1 (a batch concat, or any concat of one image along its outermost non-unit axis).
  public func concatenatesContiguously(_ inputs: [any DeviceStorage], into output: any DeviceStorage, axis: Int) -> Bool {
    guard let out = output as? CUDAStorage, axis < out.type.shape.rank else { return false }
    let xs = inputs.compactMap { $0 as? CUDAStorage }
    // An OHWI filter's bytes are not its row-major value.
    guard xs.count == inputs.count, xs.allSatisfy({ $0.layout != .filterOHWI }), out.type.shape.dims[..<axis].allSatisfy({ $0 == 1 }) else { return false }
    return xs.reduce(0) { $0 + $1.bytes } == out.bytes
  }

  /// The region of the replay's arena planned for the kernel's only output, to a buffer of that
  /// output's type (`OutputPlacement.takeOnly`).
  func placedOutput(_ type: TensorType) -> CUDAStorage? {
    guard let placement = OutputPlacement.current else { return nil }
    return storage(placement.takeOnly(type), type)
  }

  /// The region planned for output `index` of a kernel that names its outputs (one of several),
  /// as a buffer of `type`.
  func placedOutput(_ type: TensorType, index: Int) -> CUDAStorage? {
    storage(OutputPlacement.take(index, bytes: type.shape.count * type.dtype.byteSize), type)
  }

  /// `region` as a buffer of `type`, when it is on this device and large enough.
  private func storage(_ region: OutputPlacement.Region?, _ type: TensorType) -> CUDAStorage? {
    guard let region, region.bytes >= type.shape.count * type.dtype.byteSize, let arena = region.arena as? CUDAArena,
      arena.device === device
    else { return nil }
    return CUDAStorage(arena: arena, offset: region.offset, type: type)
  }
}
