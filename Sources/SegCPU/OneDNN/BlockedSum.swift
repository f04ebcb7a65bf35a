import SegCore

// MARK: - Per-channel sums of blocked activations

extension BlockedKernels {
  /// sum over N, H and W of a 4-D f32 or bf16 activation [N,H,W,C] held in nChw8c or nChw16c (a
  /// bias gradient) -> [C] (or [1,1,1,C]) in its dtype, read in the blocked layout: no full-size
  /// row-major copy first (that reorder was most of the sums' time in the 572x572 training step).
  /// nil for other axes, dtypes or layouts.
  ///
  /// Determinism: each (image, channel block) plane, H*W rows of `block` lanes, is cut into chunks
  /// whose size depends only on the shape; a chunk is summed in f32 in a fixed order, and the
  /// chunks' sums are added in Double in (image, chunk) order. Threads only decide which chunk
  /// runs where, so the bits do not depend on the thread count (they differ from the row-major
  /// kernel's by float summation order).
  static func channelSum(_ op: Sum, _ x: CPUStorage, _ output: TensorType) throws -> CPUStorage? {
    let shape = x.type.shape
    guard op.axes == [0, 1, 2], shape.rank == 4, shape.count > 0, output.dtype == x.type.dtype,
          let (memory, tag) = try blocked(x) else { return nil }
    let (images, rows, channels, block) = (shape[0], shape[1] * shape[2], shape[3], tag.block)
    let channelBlocks = (channels + block - 1) / block
    let rowsPerChunk = max(1, reductionBlock / block)
    let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
    let tasks = channelBlocks * images * chunks
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: tasks * block)
    defer { partial.deallocate() }
    let source = UnsafeRawPointer(memory.buffer.pointer)
    let bf16 = x.type.dtype == .bf16
    // nChw{block}c lays the planes out image by image, channel block by channel block.
    Parallel.forEachTask(tasks, cost: rowsPerChunk * block) { t in
      let chunk = t % chunks, image = (t / chunks) % images, cb = t / (chunks * images)
      let first = chunk * rowsPerChunk, count = min(rows, first + rowsPerChunk) - first
      let start = ((image * channelBlocks + cb) * rows + first) * block
      if bf16 {
        laneSums(BF16Lanes(base: source.assumingMemoryBound(to: UInt16.self) + start), count * block, block, partial + t * block)
      } else {
        laneSums(F32Lanes(base: source.assumingMemoryBound(to: Float.self) + start), count * block, block, partial + t * block)
      }
    }
    let out = HostBuffer.output(0, byteCount: channels * output.dtype.byteSize)
    for c in 0..<channels {
      let (cb, lane) = c.quotientAndRemainder(dividingBy: block)
      var s = 0.0
      for i in 0..<(images * chunks) { s += Double(partial[(cb * images * chunks + i) * block + lane]) }
      if bf16 {
        out.pointer.assumingMemoryBound(to: UInt16.self)[c] = BFloat16.fromFloat(Float(s))
      } else {
        out.pointer.assumingMemoryBound(to: Float.self)[c] = Float(s)
      }
    }
    return CPUStorage(plain: out, type: output)
  }

  // MARK: Lane sums

  /// out[l] = sum of x[i] over i < n with i % block == l (block 8 or 16, n a multiple of it), in f32:
  /// four vector accumulators (for instruction-level parallelism), each always holding the same lanes.
  @inline(__always)
  private static func laneSums<L: LaneReader>(_ x: L, _ n: Int, _ block: Int, _ out: UnsafeMutablePointer<Float>) {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var i = 0
    while i + 32 <= n {
      a0 += x.load(i)
      a1 += x.load(i + 8)
      a2 += x.load(i + 16)
      a3 += x.load(i + 24)
      i += 32
    }
    // i is a multiple of 32 here, so the vector at i + 8k holds the lanes of accumulator k.
    while i + 8 <= n {
      switch (i / 8) & 3 {
      case 0: a0 += x.load(i)
      case 1: a1 += x.load(i)
      default: a2 += x.load(i)
      }
      i += 8
    }
    let target = UnsafeMutableRawPointer(out)
    if block == 16 {
      target.storeBytes(of: a0 + a2, as: SIMD8<Float>.self)
      (target + 32).storeBytes(of: a1 + a3, as: SIMD8<Float>.self)
    } else {
      target.storeBytes(of: (a0 + a1) + (a2 + a3), as: SIMD8<Float>.self)
    }
  }
}

// MARK: - Reading eight lanes as f32

/// Eight consecutive elements of a buffer, widened to f32.
private protocol LaneReader {
  func load(_ i: Int) -> SIMD8<Float>
}

/// f32 elements.
private struct F32Lanes: LaneReader {
  let base: UnsafePointer<Float>
  @inline(__always) func load(_ i: Int) -> SIMD8<Float> { UnsafeRawPointer(base + i).loadUnaligned(as: SIMD8<Float>.self) }
}

/// bf16 elements (f32's top half, so widening is exact).
private struct BF16Lanes: LaneReader {
  let base: UnsafePointer<UInt16>
  @inline(__always) func load(_ i: Int) -> SIMD8<Float> {
    let bits = UnsafeRawPointer(base + i).loadUnaligned(as: SIMD8<UInt16>.self)
    return unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16, to: SIMD8<Float>.self)
  }
}
