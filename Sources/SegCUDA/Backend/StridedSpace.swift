import SegCore

// MARK: - Index spaces for kernels

/// An index space (row-major over `dims`) and, per operand, its element strides along each axis:
/// what the strided kernels take. Merging drops axes of extent 1 and joins neighbouring axes that
/// every operand walks contiguously, so kernels do fewer divisions and rarely exceed 8 axes.
struct StridedSpace {
  var dims: [Int]
  var strides: [[Int]]

  /// Merged: extent-1 axes dropped, and axes d, d+1 joined where each operand's stride along d is
  /// its stride along d+1 times the extent of d+1. Row-major order of the space is kept.
  func merged() -> StridedSpace {
    var dims: [Int] = []
    var strides: [[Int]] = self.strides.map { _ in [] }
    for d in self.dims.indices where self.dims[d] != 1 {
      let joinable = !dims.isEmpty
        && self.strides.indices.allSatisfy { k in strides[k].last! == self.strides[k][d] * self.dims[d] }
      if joinable {
        dims[dims.count - 1] *= self.dims[d]
        for k in strides.indices { strides[k][strides[k].count - 1] = self.strides[k][d] }
      } else {
        dims.append(self.dims[d])
        for k in strides.indices { strides[k].append(self.strides[k][d]) }
      }
    }
    return StridedSpace(dims: dims, strides: strides)
  }

  /// Merged, or an error naming the op when it still has more axes than a kernel takes (the name
  /// is made only then).
  func forKernel(_ op: @autoclosure () -> String, _ operands: [TensorType]) throws -> StridedSpace {
    let m = merged()
    guard m.dims.count <= KernelArgument.maxRank else {
      throw TensorError(
        op: op(), operands: operands, "the CUDA kernels index at most \(KernelArgument.maxRank) axes; reshape first")
    }
    return m
  }

  /// Elements in the space.
  var count: Int { dims.reduce(1, *) }
}

/// The rank check for kernels that take per-axis vectors without merging (pad, padBackward).
func checkRank(_ op: String, _ operands: [TensorType], _ rank: Int) throws {
  guard rank <= KernelArgument.maxRank else {
    throw TensorError(
      op: op, operands: operands, "the CUDA kernels index at most \(KernelArgument.maxRank) axes; reshape first")
  }
}
