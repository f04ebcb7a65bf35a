import SegCore

// MARK: - Optimizer kernels

/// The fused Adam update of SegNN's Adam (Keras's form: bias correction folded into the step size,
/// epsilon added to sqrt(v)) on fp32 master weights and moments, for gradients in f32, f16 or
/// bf16, computing in f32 (outputs may alias the inputs: each thread reads element i, then writes it):
/// ```
/// m = m * beta1 + g * (1 - beta1);  v = v * beta2 + g * g * (1 - beta2)
/// p = p - m / (sqrt(v) + epsilon) * stepSize
/// ```
/// `adam_<gradient dtype>(p, m, v, g, pOut, mOut, vOut, n, beta1, beta2, oneMinusBeta1, oneMinusBeta2,
/// epsilon, stepSize)`.
enum OptimizerKernels {
  static let gradientTypes: [DType] = [.f32, .f16, .bf16]

  static let family = KernelFamily(
    name: "optimizer", body: body,
    instances: gradientTypes.map { d in
      (KernelNames.name("adam", d), "ADAM(\(KernelNames.cType(d)), \(d.rawValue))")
    })

  static let body = #"""
    // ---- Adam ----
    // Products and sums are rounded one by one (mulRn, addRn: never contracted into fused
    // multiply-adds), so the GPU gives the values of the same formula written with ops.
    template <class G>
    DEVICE void adam(
        const float* p, const float* m, const float* v, const G* g, float* pOut, float* mOut, float* vOut,
        i64 n, float beta1, float beta2, float oneMinusBeta1, float oneMinusBeta2, float epsilon,
        float stepSize) {
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        const float gi = Elem<G>::load(g[i]);
        const float mi = addRn(mulRn(m[i], beta1), mulRn(gi, oneMinusBeta1));
        const float vi = addRn(mulRn(v[i], beta2), mulRn(mulRn(gi, gi), oneMinusBeta2));
        const float pi = subRn(p[i], mulRn(divRn(mi, addRn(sqrtf(vi), epsilon)), stepSize));
        mOut[i] = mi;
        vOut[i] = vi;
        pOut[i] = pi;
      }
    }

    #define ADAM(G, SUFFIX)                                                                         \
      KERNEL adam_##SUFFIX(const float* p, const float* m, const float* v, const G* g, float* pOut, \
          float* mOut, float* vOut, i64 n, float beta1, float beta2, float oneMinusBeta1,            \
          float oneMinusBeta2, float epsilon, float stepSize) {                                     \
        adam<G>(p, m, v, g, pOut, mOut, vOut, n, beta1, beta2, oneMinusBeta1, oneMinusBeta2, epsilon, \
            stepSize);                                                                              \
      }
    """#
}
