import SegCore

// MARK: - Fused Adam

extension CPUBackend {
  /// One pass over p, m, v and g (all f32) into three new buffers (or donated ones), SIMD and multi-threaded; the
  /// arithmetic is in the order of `FusedAdamBackend`'s formula, as SegNN's Adam with ops.
  /// Gradients of other dtypes return nil (the CPU computes in f32; they do not occur).
  static func adamUpdate(
    parameter: Operand, m: Operand, v: Operand, gradient: Operand, _ c: AdamConstants
  ) throws -> (parameter: any DeviceStorage, m: any DeviceStorage, v: any DeviceStorage)? {
    let operands = [parameter, m, v, gradient]
    let shape = parameter.type.shape
    guard operands.allSatisfy({ $0.type == TensorType(shape, .f32) }) else { return nil }
    let inputs = try operands.map { o in
      try withDNNLErrors(op: "adam", operands.map(\.type)) { try cpuStorage(o.storage, op: "adam").plainBuffer() }
    }
    let n = shape.count
    // A donated p, m or v (`InPlaceOutputs`) in its own row-major buffer takes its new value:
    // each element is read before it is written, by the same thread. Its old storage says so, so
    // that nothing derived from its values (a Winograd transform) is taken for the new ones.
    let donated = InPlaceOutputs.current?.buffers ?? [:]
    let outputs = (0..<3).map { k in
      if let s = donated[k] as? CPUStorage, s.type == TensorType(shape, .f32), s.madeLayout == nil, !s.origin.isInArena,
        s.origin.byteCount == n * 4 {
        s.valuesRewritten()
        return s.origin
      }
      return HostBuffer.output(k, byteCount: n * 4)
    }
    let (beta1, beta2) = (Float(c.beta1), Float(c.beta2))
    let (oneMinusBeta1, oneMinusBeta2) = (Float(1 - c.beta1), Float(1 - c.beta2))
    let (epsilon, stepSize) = (Float(c.epsilon), Float(c.stepSize))
    withExtendedLifetime(inputs) {
      let (p0, m0, v0, g) = (
        UnsafePointer(inputs[0].pointer.assumingMemoryBound(to: Float.self)),
        UnsafePointer(inputs[1].pointer.assumingMemoryBound(to: Float.self)),
        UnsafePointer(inputs[2].pointer.assumingMemoryBound(to: Float.self)),
        UnsafePointer(inputs[3].pointer.assumingMemoryBound(to: Float.self)))
      let (p1, m1, v1) = (
        outputs[0].pointer.assumingMemoryBound(to: Float.self), outputs[1].pointer.assumingMemoryBound(to: Float.self),
        outputs[2].pointer.assumingMemoryBound(to: Float.self))
      Parallel.forEach(n, grain: Parallel.defaultGrain / 4) { range in
        var i = range.lowerBound
        while i + Vec<Float>.scalarCount <= range.upperBound {
          let gi = g.vector(at: i)
          let mi = m0.vector(at: i) * beta1 + gi * oneMinusBeta1
          let vi = v0.vector(at: i) * beta2 + gi * gi * oneMinusBeta2
          m1.store(mi, at: i)
          v1.store(vi, at: i)
          p1.store(p0.vector(at: i) - mi / (vi.squareRoot() + epsilon) * stepSize, at: i)
          i += Vec<Float>.scalarCount
        }
        while i < range.upperBound {
          let gi = g[i]
          let mi = m0[i] * beta1 + gi * oneMinusBeta1
          let vi = v0[i] * beta2 + gi * gi * oneMinusBeta2
          (m1[i], v1[i]) = (mi, vi)
          p1[i] = p0[i] - mi / (vi.squareRoot() + epsilon) * stepSize
          i += 1
        }
      }
    }
    let type = TensorType(shape, .f32)
    return (CPUStorage(plain: outputs[0], type: type), CPUStorage(plain: outputs[1], type: type),
            CPUStorage(plain: outputs[2], type: type))
  }
}
