import SegCore

// MARK: - Type, random and label kernels

/// cast between any two dtypes, randomMask (bit for bit SegCore's counter-based hash), argmax (to
/// i32, first maximum, first NaN wins) and oneHot (i32 or u8 labels to any dtype).
///
/// `cast_<from>_<to>(x, out, n)`. `randomMask_<dtype>(out, n, seed, offset, threshold, kept)`:
/// element i is `kept` rounded to the dtype when bits(seed, offset + i) < threshold
/// (= keepProbability * 2^24), else 0. `argmax_<dtype>(x, out, outer, n, inner)`: x viewed as
/// [outer, n, inner], out [outer, inner]. `oneHot_<labels>_<dtype>(labels, out, count, classes,
/// firstBad)`: a label outside 0..<classes writes a zero row and lowers *firstBad (initially
/// UINT64_MAX) to its index, so that the caller can name the first bad label.
enum ConvertKernels {
  static let family = KernelFamily(
    name: "convert", body: body,
    instances: KernelNames.all.flatMap { s in
      KernelNames.all.filter { $0 != s }.map { d in
        (
          "cast_\(s.rawValue)_\(d.rawValue)",
          "CAST(\(s.rawValue), \(KernelNames.cType(s)), \(d.rawValue), \(KernelNames.cType(d)))"
        )
      }
    }
      + KernelNames.floats.map { d in
        (KernelNames.name(OpKind.randomMask.rawValue, d), "RANDOM_MASK(\(KernelNames.cType(d)), \(d.rawValue))")
      }
      + KernelNames.floats.map { d in
        (KernelNames.name("randomMaskAt", d), "RANDOM_MASK_AT(\(KernelNames.cType(d)), \(d.rawValue))")
      }
      + KernelNames.all.map { d in
        (KernelNames.name(OpKind.argmax.rawValue, d), "ARGMAX(\(KernelNames.cType(d)), \(d.rawValue))")
      }
      + [DType.i32, .u8].flatMap { l in
        KernelNames.all.map { d in
          (
            "oneHot_\(l.rawValue)_\(d.rawValue)",
            "ONE_HOT(\(l.rawValue), \(KernelNames.cType(l)), \(d.rawValue), \(KernelNames.cType(d)))"
          )
        }
      })

  static let body = #"""
    // ---- Cast ----
    // K = 16 / the smaller element size per work item, so that both sides move whole 16-byte
    // vectors (f32 to f16: two loads, one store), then the last n % K elements one each.
    template <class S, class D>
    DEVICE void castElements(const S* __restrict__ x, D* __restrict__ out, i64 n) {
      const int K = 16 / (sizeof(S) < sizeof(D) ? sizeof(S) : sizeof(D));
      i64 done = 0;
      if (aligned16(x) && aligned16(out)) {
        const i64 vectors = n / K;
        #pragma unroll 1
        for (i64 j = gridStart(); j < vectors; j += gridStep()) {
          S s[K];
          D d[K];
          loadVec<S, K>(x + j * K, s);
          #pragma unroll
          for (int k = 0; k < K; ++k) d[k] = To<D>::from(s[k]);
          storeVec<D, K>(out + j * K, d);
        }
        done = vectors * K;
      }
      #pragma unroll 1
      for (i64 i = done + gridStart(); i < n; i += gridStep()) out[i] = To<D>::from(x[i]);
    }

    #define CAST(SN, S, DN, D) \
      KERNEL cast_##SN##_##DN(const S* x, D* out, i64 n) { castElements<S, D>(x, out, n); }

    // ---- Random mask: SplitMix64's finaliser of seed ^ (counter * golden ratio), top 24 bits ----
    DEVICE u64 maskBits(u64 seed, u64 counter) {
      u64 z = seed ^ (counter * 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z = z ^ (z >> 31);
      return z >> 40;
    }

    template <class T>
    DEVICE void randomMask(T* out, i64 n, u64 seed, u64 offset, double threshold, double kept) {
      const T keep = To<T>::from(kept), drop = To<T>::from(0.0);
      #pragma unroll 1
      for (i64 i = gridStart(); i < n; i += gridStep())
        out[i] = (double)maskBits(seed, offset + (u64)i) < threshold ? keep : drop;
    }

    #define RANDOM_MASK(T, SUFFIX)                                                                  \
      KERNEL randomMask_##SUFFIX(T* out, i64 n, u64 seed, u64 offset, double threshold, double kept) { \
        randomMask<T>(out, n, seed, offset, threshold, kept);                                       \
      }
    // The seed read from device memory: a captured graph's step scalar, rewritten before each launch.
    #define RANDOM_MASK_AT(T, SUFFIX)                                                               \
      KERNEL randomMaskAt_##SUFFIX(T* out, i64 n, const u64* seed, u64 offset, double threshold, double kept) { \
        randomMask<T>(out, n, *seed, offset, threshold, kept);                                      \
      }

    // ---- Argmax ----
    template <class T>
    DEVICE void argmax(const T* x, int* out, i64 outer, i64 n, i64 inner) {
      #pragma unroll 1
      for (i64 t = gridStart(); t < outer * inner; t += gridStep()) {
        u64 iu;
        const i64 o = (i64)udiv((u64)t, (u64)inner, iu), i = (i64)iu, base = o * n * inner + i;
        double b = toF64(x[base]);
        int best = 0;
        for (i64 k = 1; k < n; ++k) {
          if (b != b) break;
          const double v = toF64(x[base + k * inner]);
          if (v != v || v > b) { b = v; best = (int)k; }
        }
        out[t] = best;
      }
    }

    #define ARGMAX(T, SUFFIX) \
      KERNEL argmax_##SUFFIX(const T* x, int* out, i64 outer, i64 n, i64 inner) { argmax<T>(x, out, outer, n, inner); }

    // ---- One-hot ----
    template <class L, class T>
    DEVICE void oneHot(const L* labels, T* out, i64 count, i64 classes, u64* firstBad) {
      const T one = To<T>::from(1.0), zero = To<T>::from(0.0);
      #pragma unroll 1
      for (i64 e = gridStart(); e < count * classes; e += gridStep()) {
        u64 ku;
        const i64 i = (i64)udiv((u64)e, (u64)classes, ku), k = (i64)ku, label = (i64)labels[i];
        const bool valid = label >= 0 && label < classes;
        if (!valid && k == 0) atomicMin(firstBad, (u64)i);
        out[e] = valid && label == k ? one : zero;
      }
    }

    #define ONE_HOT(LN, L, DN, T)                                                                  \
      KERNEL oneHot_##LN##_##DN(const L* labels, T* out, i64 count, i64 classes, u64* firstBad) { \
        oneHot<L, T>(labels, out, count, classes, firstBad);                                      \
      }
    """#
}
