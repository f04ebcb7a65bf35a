import SegCore

// MARK: - Registry

/// The Swift kernels of the CPU backend, by op kind. Ops with a oneDNN kernel may be absent here.
enum SwiftKernels {
  static let table: [OpKind: PlainKernel] = [
    // Elementwise (Elementwise.swift).
    .add: binaryKernel, .sub: binaryKernel, .mul: binaryKernel, .div: binaryKernel,
    .neg: unaryKernel, .exp: unaryKernel, .log: unaryKernel, .sqrt: unaryKernel,
    .addScalar: unaryKernel, .mulScalar: unaryKernel,
    .relu: unaryKernel, .reluBackward: binaryKernel,
    // Reductions and copies (Reduce.swift, Copy.swift).
    .sum: sumKernel, .broadcastTo: broadcastToKernel, .reshape: reshapeKernel,
    // Softmax (Softmax.swift).
    .softmax: softmaxKernel, .logSoftmax: softmaxKernel,
    // Layout (Layout.swift).
    .concat: concatKernel, .slice: sliceKernel, .pad: padKernel, .padBackward: padBackwardKernel,
    // Random, type and label ops (Convert.swift).
    .randomMask: randomMaskKernel, .cast: castKernel, .argmax: argmaxKernel, .oneHot: oneHotKernel,
  ]
}
