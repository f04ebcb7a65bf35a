import SegCore

// MARK: - Registry

/// The Swift kernels of the CPU backend, by op kind. Ops with a oneDNN kernel may be absent here.
enum SwiftKernels {
  static let table: [OpKind: PlainKernel] = [:]
}
