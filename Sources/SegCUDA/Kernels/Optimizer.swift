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
    name: "optimizer", body: body + multiTensorBody,
    instances: gradientTypes.map { d in
      (KernelNames.name("adam", d), "ADAM(\(KernelNames.cType(d)), \(d.rawValue))")
    } + multiTensorInstances)

  static let body = #"""
    // ---- Adam ----
    // Products and sums are rounded one by one (mulRn, addRn: never contracted into fused
    // multiply-adds), so the GPU gives the values of the same formula written with ops.
    DEVICE void adamAt(float p, float m, float v, float g, float beta1, float beta2, float oneMinusBeta1,
        float oneMinusBeta2, float epsilon, float stepSize, float& pOut, float& mOut, float& vOut) {
      mOut = addRn(mulRn(m, beta1), mulRn(g, oneMinusBeta1));
      vOut = addRn(mulRn(v, beta2), mulRn(mulRn(g, g), oneMinusBeta2));
      pOut = subRn(p, mulRn(divRn(mOut, addRn(sqrtf(vOut), epsilon)), stepSize));
    }

    // K = one 16-byte vector of gradients per work item (4 f32 or 8 f16/bf16), and the f32
    // arrays in as many 16-byte vectors; then the last n % K elements one each. Each thread reads
    // its elements before writing them, so outputs may alias inputs (no __restrict__).
    template <class G>
    DEVICE void adam(
        const float* p, const float* m, const float* v, const G* g, float* pOut, float* mOut, float* vOut,
        i64 n, float beta1, float beta2, float oneMinusBeta1, float oneMinusBeta2, float epsilon,
        float stepSize) {
      const int K = Pack<G>::N;
      i64 done = 0;
      if (aligned16(p) && aligned16(m) && aligned16(v) && aligned16(g) && aligned16(pOut) && aligned16(mOut)
          && aligned16(vOut)) {
        const i64 vectors = n / K;
    #pragma unroll 1
        for (i64 j = gridStart(); j < vectors; j += gridStep()) {
          float pk[K], mk[K], vk[K];
          G gk[K];
          loadVec<float, K>(p + j * K, pk);
          loadVec<float, K>(m + j * K, mk);
          loadVec<float, K>(v + j * K, vk);
          loadVec<G, K>(g + j * K, gk);
    #pragma unroll
          for (int k = 0; k < K; ++k) {
            adamAt(pk[k], mk[k], vk[k], Elem<G>::load(gk[k]), beta1, beta2, oneMinusBeta1, oneMinusBeta2, epsilon,
                stepSize, pk[k], mk[k], vk[k]);
          }
          storeVec<float, K>(mOut + j * K, mk);
          storeVec<float, K>(vOut + j * K, vk);
          storeVec<float, K>(pOut + j * K, pk);
        }
        done = vectors * K;
      }
    #pragma unroll 1
      for (i64 i = done + gridStart(); i < n; i += gridStep()) {
        float pi, mi, vi;
        adamAt(p[i], m[i], v[i], Elem<G>::load(g[i]), beta1, beta2, oneMinusBeta1, oneMinusBeta2, epsilon, stepSize,
            pi, mi, vi);
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
