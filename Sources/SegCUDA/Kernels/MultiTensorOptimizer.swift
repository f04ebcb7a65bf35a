import SegCore

// MARK: - The whole optimizer step in three launches

/// `multiTensorAdam` over every parameter at once, from a device table of 10 words per parameter
/// (p, m, v, g, pOut, mOut, vOut, n, hOut, hType: the half copy of p' and its dtype, 1 f16, 2
/// bf16, 0 none), in three launches whatever the number of parameters, reading and writing the
/// training state (`StepState`) so that the host decides nothing:
///
/// - `adamStats_<g>(table, tensors, partial, parts)`: work item t of `parts` sums p^2 and counts
///   inf/NaN gradient elements over vectors t, t + parts, ... of every tensor (16-byte loads),
///   into partial[2t], partial[2t + 1]: a fixed order, so the sums are deterministic;
/// - `adamStatsFinish(partial, parts, crossEntropy, dice, state, stateOut, halfDecay,
///   growthInterval, learningRate, learningRateAt, beta1, beta2)`: block 0 adds the partials
///   (fixed tree) and thread 0 writes `StepState.next` of the state into stateOut (the same
///   buffer in a captured step: it reads every word before writing): the loss scaler's decision,
///   the step size of update t (in double, from the applied count) and the step's losses;
/// - `multiAdam_<g>(table, tensors, stateOut, decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2,
///   epsilon)`: g = g * (1 / the step's scale) + p * decay (the multiply skipped for scale 1),
///   then `adamAt` with the step's size; a step stateOut marks skipped copies p, m and v unchanged.
extension OptimizerKernels {
  static let multiTensorInstances: [(kernel: String, line: String)] =
    gradientTypes.flatMap { d in
      [
        (KernelNames.name("adamStats", d), "ADAM_STATS(\(KernelNames.cType(d)), \(d.rawValue))"),
        (KernelNames.name("multiAdam", d), "MULTI_ADAM(\(KernelNames.cType(d)), \(d.rawValue))"),
      ]
    } + [("adamStatsFinish", "")]

  static let multiTensorBody = #"""
    // ---- Multi-tensor Adam ----
    struct AdamTensor {
      const float* p; const float* m; const float* v; const void* g; float* pOut; float* mOut; float* vOut; i64 n;
      void* hOut; u64 hType;
    };
    DEVICE AdamTensor adamTensor(const u64* table, int k) {
      const u64* e = table + 10 * (i64)k;
      AdamTensor a;
      a.p = (const float*)e[0]; a.m = (const float*)e[1]; a.v = (const float*)e[2]; a.g = (const void*)e[3];
      a.pOut = (float*)e[4]; a.mOut = (float*)e[5]; a.vOut = (float*)e[6]; a.n = (i64)e[7];
      a.hOut = (void*)e[8]; a.hType = e[9];
      return a;
    }
    // The half copy of count new parameters from element at, rounded as the cast kernel rounds.
    DEVICE void storeHalves(const AdamTensor& a, i64 at, const float* x, int count) {
      if (a.hType == 1) {
        half_t* h = (half_t*)a.hOut;
        for (int e = 0; e < count; ++e) h[at + e] = To<half_t>::from(x[e]);
      } else if (a.hType == 2) {
        bf16_t* h = (bf16_t*)a.hOut;
        for (int e = 0; e < count; ++e) h[at + e] = To<bf16_t>::from(x[e]);
      }
    }
    DEVICE float notFinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u ? 1.f : 0.f; }

    template <class G>
    DEVICE void adamStats(const u64* table, int tensors, float* partial, i64 parts) {
      const int K = Pack<G>::N;
    #pragma unroll 1
      for (i64 t = gridStart(); t < parts; t += gridStep()) {
        float squares = 0.f, bad = 0.f;
    #pragma unroll 1
        for (int k = 0; k < tensors; ++k) {
          const AdamTensor a = adamTensor(table, k);
          const G* g = (const G*)a.g;
          i64 done = 0;
          if (aligned16(a.p) && aligned16(g)) {
            const i64 vectors = a.n / K;
    #pragma unroll 1
            for (i64 j = t; j < vectors; j += parts) {
              float pk[K];
              G gk[K];
              loadVec<float, K>(a.p + j * K, pk);
              loadVec<G, K>(g + j * K, gk);
    #pragma unroll
              for (int e = 0; e < K; ++e) {
                squares = addRn(squares, mulRn(pk[e], pk[e]));
                bad += notFinite(Elem<G>::load(gk[e]));
              }
            }
            done = vectors * K;
          }
    #pragma unroll 1
          for (i64 i = done + t; i < a.n; i += parts) {
            squares = addRn(squares, mulRn(a.p[i], a.p[i]));
            bad += notFinite(Elem<G>::load(g[i]));
          }
        }
        partial[2 * t] = squares;
        partial[2 * t + 1] = bad;
      }
    }

    // The words of `StepState`, as SegCore lays them out.
    enum {
      S_SCALE = 0, S_GOOD = 1, S_SKIPPED = 2, S_APPLIED_STEPS = 3, S_IN_A_ROW = 4, S_FAILURES = 5, S_CE = 6, S_DICE = 7,
      S_PENALTY = 8, S_NON_FINITE = 9, S_USED_SCALE = 10, S_STEP_SIZE = 11, S_APPLIED = 12, S_WIN_CE = 13,
      S_WIN_DICE = 14, S_WIN_TOTAL = 15, S_WIN_STEPS = 16, S_COUNT = 20
    };

    // One thread: `StepState.next` in f32, the step size in double.
    DEVICE void nextStepState(const float* in, float* out, float ce, float dice, float penalty, float bad,
        int growthInterval, double learningRate, double beta1, double beta2) {
      float s[S_COUNT];
      for (int i = 0; i < S_COUNT; ++i) s[i] = in[i];
      float n[S_COUNT];
      for (int i = 0; i < S_COUNT; ++i) n[i] = s[i];
      const bool skip = growthInterval > 0 && bad != 0.f;
      n[S_CE] = ce; n[S_DICE] = dice; n[S_PENALTY] = penalty; n[S_NON_FINITE] = bad;
      n[S_USED_SCALE] = s[S_SCALE];
      const double t = (double)s[S_APPLIED_STEPS] + 1.0;
      n[S_STEP_SIZE] = (float)(learningRate * sqrt(1.0 - pow(beta2, t)) / (1.0 - pow(beta1, t)));
      n[S_APPLIED] = skip ? 0.f : 1.f;
      if (skip) {
        if (s[S_SCALE] <= 1.f) n[S_FAILURES] = addRn(s[S_FAILURES], 1.f);
        n[S_SCALE] = fmaxf(mulRn(s[S_SCALE], 0.5f), 1.f);
        n[S_GOOD] = 0.f;
        n[S_SKIPPED] = addRn(s[S_SKIPPED], 1.f);
        n[S_IN_A_ROW] = addRn(s[S_IN_A_ROW], 1.f);
      } else {
        n[S_APPLIED_STEPS] = addRn(s[S_APPLIED_STEPS], 1.f);
        n[S_IN_A_ROW] = 0.f;
        if (growthInterval > 0) {
          n[S_GOOD] = addRn(s[S_GOOD], 1.f);
          if (n[S_GOOD] >= (float)growthInterval) {
            if (notFinite(mulRn(s[S_SCALE], 2.f)) == 0.f) n[S_SCALE] = mulRn(s[S_SCALE], 2.f);
            n[S_GOOD] = 0.f;
          }
        }
        n[S_WIN_CE] = addRn(s[S_WIN_CE], ce);
        n[S_WIN_DICE] = addRn(s[S_WIN_DICE], dice);
        n[S_WIN_TOTAL] = addRn(s[S_WIN_TOTAL], addRn(addRn(ce, dice), penalty));
        n[S_WIN_STEPS] = addRn(s[S_WIN_STEPS], 1.f);
      }
      for (int i = 0; i < S_COUNT; ++i) out[i] = n[i];
    }

    // One block (blockDim.x a power of two, at most 1024) adds the partials; other blocks leave.
    KERNEL adamStatsFinish(const float* partial, i64 parts, const float* crossEntropy, const float* dice,
        const float* state, float* stateOut, float halfDecay, int growthInterval, double learningRate,
        const double* learningRateAt, double beta1, double beta2) {
      __shared__ float squares[1024];
      __shared__ float bad[1024];
      if (blockIdx.x != 0) return;
      float s = 0.f, b = 0.f;
    #pragma unroll 1
      for (i64 i = threadIdx.x; i < parts; i += blockDim.x) {
        s = addRn(s, partial[2 * i]);
        b += partial[2 * i + 1];
      }
      squares[threadIdx.x] = s;
      bad[threadIdx.x] = b;
      __syncthreads();
    #pragma unroll 1
      for (unsigned w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
          squares[threadIdx.x] = addRn(squares[threadIdx.x], squares[threadIdx.x + w]);
          bad[threadIdx.x] += bad[threadIdx.x + w];
        }
        __syncthreads();
      }
      if (threadIdx.x == 0) {
        nextStepState(state, stateOut, crossEntropy[0], dice[0], mulRn(squares[0], halfDecay), bad[0], growthInterval,
            learningRateAt ? *learningRateAt : learningRate, beta1, beta2);
      }
    }

    DEVICE float decayed(float g, float p, float unscale, float decay) {
      return addRn(unscale == 1.f ? g : mulRn(g, unscale), mulRn(p, decay));
    }

    template <class G>
    DEVICE void multiAdam(const u64* table, int tensors, const float* state, float decay, float beta1, float beta2,
        float oneMinusBeta1, float oneMinusBeta2, float epsilon) {
      const int K = Pack<G>::N;
      const bool skip = state[S_APPLIED] == 0.f;
      const float unscale = 1.f / state[S_USED_SCALE], stepSize = state[S_STEP_SIZE];
    #pragma unroll 1
      for (int k = 0; k < tensors; ++k) {
        const AdamTensor a = adamTensor(table, k);
        const G* g = (const G*)a.g;
        i64 done = 0;
        if (aligned16(a.p) && aligned16(a.m) && aligned16(a.v) && aligned16(g) && aligned16(a.pOut)
            && aligned16(a.mOut) && aligned16(a.vOut)) {
          const i64 vectors = a.n / K;
    #pragma unroll 1
          for (i64 j = gridStart(); j < vectors; j += gridStep()) {
            float pk[K], mk[K], vk[K];
            G gk[K];
            loadVec<float, K>(a.p + j * K, pk);
            loadVec<float, K>(a.m + j * K, mk);
            loadVec<float, K>(a.v + j * K, vk);
            if (!skip) {
              loadVec<G, K>(g + j * K, gk);
    #pragma unroll
              for (int e = 0; e < K; ++e) {
                adamAt(pk[e], mk[e], vk[e], decayed(Elem<G>::load(gk[e]), pk[e], unscale, decay), beta1, beta2,
                    oneMinusBeta1, oneMinusBeta2, epsilon, stepSize, pk[e], mk[e], vk[e]);
              }
            }
            storeVec<float, K>(a.mOut + j * K, mk);
            storeVec<float, K>(a.vOut + j * K, vk);
            storeVec<float, K>(a.pOut + j * K, pk);
            storeHalves(a, j * K, pk, K);
          }
          done = vectors * K;
        }
    #pragma unroll 1
        for (i64 i = done + gridStart(); i < a.n; i += gridStep()) {
          float pi = a.p[i], mi = a.m[i], vi = a.v[i];
          if (!skip) {
            adamAt(a.p[i], a.m[i], a.v[i], decayed(Elem<G>::load(g[i]), a.p[i], unscale, decay), beta1, beta2,
                oneMinusBeta1, oneMinusBeta2, epsilon, stepSize, pi, mi, vi);
          }
          a.mOut[i] = mi;
          a.vOut[i] = vi;
          a.pOut[i] = pi;
          storeHalves(a, i, &pi, 1);
        }
      }
    }

    #define ADAM_STATS(G, SUFFIX)                                                                   \
      KERNEL adamStats_##SUFFIX(const u64* table, int tensors, float* partial, i64 parts) {         \
        adamStats<G>(table, tensors, partial, parts);                                               \
      }
    #define MULTI_ADAM(G, SUFFIX)                                                                   \
      KERNEL multiAdam_##SUFFIX(const u64* table, int tensors, const float* state, float decay, float beta1, \
          float beta2, float oneMinusBeta1, float oneMinusBeta2, float epsilon) {                   \
        multiAdam<G>(table, tensors, state, decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2, epsilon); \
      }
    """#
}
