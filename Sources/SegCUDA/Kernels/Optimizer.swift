import SegCore

// MARK: - Optimizer kernels

/// The fused Adam update of SegNN's Adam (Keras's form: bias correction folded into the step size,
/// epsilon added to sqrt(v)), in place on fp32 master weights and moments, for gradients in f32,
/// f16 or bf16, computing in f32:
/// ```
/// m = m * beta1 + g * (1 - beta1);  v = v * beta2 + g * g * (1 - beta2)
/// p = p - m / (sqrt(v) + epsilon) * stepSize
/// ```
/// `adam_<gradient dtype>(p, m, v, g, n, beta1, beta2, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize)`.
enum OptimizerKernels {
  static let gradientTypes: [DType] = [.f32, .f16, .bf16]

  static let family = KernelFamily(
    name: "optimizer", body: body,
    instances: gradientTypes.map { d in
      (KernelNames.name("adam", d), "ADAM(\(KernelNames.cType(d)), \(d.rawValue))")
    })

  static let body = #"""
    // ---- Adam ----
    template <class G>
    DEVICE void adam(
        float* p, float* m, float* v, const G* g, i64 n, float beta1, float beta2, float oneMinusBeta1,
        float oneMinusBeta2, float epsilon, float stepSize) {
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        const float gi = Elem<G>::load(g[i]);
        const float mi = m[i] * beta1 + gi * oneMinusBeta1;
        const float vi = v[i] * beta2 + gi * gi * oneMinusBeta2;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - mi / (sqrtf(vi) + epsilon) * stepSize;
      }
    }

    #define ADAM(G, SUFFIX)                                                                         \
      KERNEL adam_##SUFFIX(float* p, float* m, float* v, const G* g, i64 n, float beta1, float beta2, \
          float oneMinusBeta1, float oneMinusBeta2, float epsilon, float stepSize) {                \
        adam<G>(p, m, v, g, n, beta1, beta2, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize);     \
      }
    """#
}
