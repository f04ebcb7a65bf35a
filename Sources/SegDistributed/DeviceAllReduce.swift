import SegCore

// MARK: - Sums on the device

/// A sum over every rank of a job that runs where the tensors are (NCCL for CUDA tensors), so that
/// their gradients never cross to the host: `GradientReducer` gives it the buckets of tensors on a
/// backend it `reduces`, and MPI the others (the host's).
public protocol DeviceAllReduce: AnyObject {
  /// Whether tensors of `backend` are summed here.
  func reduces(_ backend: any Backend) -> Bool
  /// Starts summing `bucket`, a 1-D f32 tensor of such a backend, over every rank in place, after
  /// the work queued on the backend so far (the bucket's producers).
  func start(_ bucket: Tensor) throws
  /// Makes the backend's later work wait for every started sum.
  func finish() throws
}

// MARK: - A bucket of device gradients

/// Gradients that stay on their device: flattened to f32 and concatenated into one bucket there,
/// summed in place by a `DeviceAllReduce`, then cut back into gradients of their own shapes and
/// types, averaged.
struct DeviceBucket {
  var members: [(index: Int, count: Int, shape: Shape, dtype: DType)] = []
  var flat: [Tensor] = []
  var count = 0
  var summed: Tensor?

  /// Adds gradient `index`, in f32 (fp16 and bf16 gradients are summed in f32).
  mutating func add(_ index: Int, _ gradient: Tensor) throws {
    let f32 = gradient.dtype == .f32 ? gradient : try cast(gradient, to: .f32)
    flat.append(try reshape(f32, [gradient.shape.count]))
    members.append((index, gradient.shape.count, gradient.shape, gradient.dtype))
    count += gradient.shape.count
  }

  /// Concatenates the members and starts their sum.
  mutating func start(_ device: any DeviceAllReduce) throws {
    // One member is copied too: the sum is made in place, and the bucket must not be a view of a gradient.
    let bucket = flat.count == 1 ? try flat[0] * 1.0 : try concat(flat, axis: 0)
    flat = []
    try device.start(bucket)
    summed = bucket
  }

  /// The averaged gradients (after the device's `finish`), by their step index.
  func gradients(scale: Float) throws -> [(Int, Tensor)] {
    guard let summed else { return [] }
    var out: [(Int, Tensor)] = []
    var offset = 0
    for m in members {
      let part = try reshape(slice(summed, starts: [offset], sizes: [m.count]), m.shape) * Double(scale)
      out.append((m.index, m.dtype == .f32 ? part : try cast(part, to: m.dtype)))
      offset += m.count
    }
    return out
  }

  /// How many of the summed values are inf or NaN, seen through their sum (non-finite when any is,
  /// or when finite values overflow it: both skip a loss-scaled step); the same on every rank,
  /// whose buckets hold the same sums.
  func nonFinite() throws -> Double {
    guard let summed else { return 0 }
    return try sum(summed).item().isFinite ? 0 : 1
  }
}
