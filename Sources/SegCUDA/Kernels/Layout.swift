import SegCore

// MARK: - Layout kernels

/// Data movement by element size (any dtype): strided copies (slice, broadcastTo, concat, reshape),
/// zero and reflect padding; and padBackward, the adjoint of reflect padding, for floating dtypes.
///
/// `copy_b<bytes>(src, dst, n, dims, srcStrides, srcBase, dstStrides, dstBase)`: for each of the n
/// row-major elements of `dims`, dst[dstBase + sum(c * dstStrides)] = src[srcBase + sum(c * srcStrides)].
///
/// `pad_b<bytes>(src, dst, n, outDims, before, inDims, inStrides, reflect)`: output coordinate j
/// reads input coordinate j - before along each axis; outside the input it is 0, or with reflect
/// the input mirrored about its edge (NumPy's 'reflect').
///
/// `padBackward_<dtype>(g, out, n, interior, before, after, gStrides)`: out (the interior) gets, per
/// element, the sum of every element of the padded gradient g that reflect padding copied from it,
/// gathered (no atomics) in the padded tensor's row-major order, as the reference adds them.
enum LayoutKernels {
  static let family = KernelFamily(
    name: "layout", body: body,
    instances: KernelNames.byteSizes.flatMap { b -> [(String, String)] in
      [("copy_b\(b)", "COPY(\(b), \(KernelNames.wordType(b)))"), ("pad_b\(b)", "")]
    }
      + KernelNames.floats.map { d in
        (KernelNames.name(OpKind.padBackward.rawValue, d), "PAD_BACKWARD(\(KernelNames.cType(d)), \(d.rawValue))")
      })

  static let body = #"""
    // ---- Strided copy ----
    template <class E>
    DEVICE void stridedCopy(
        const E* src, E* dst, i64 n, const Dims& dims, const Vec& ss, i64 sbase, const Vec& ds, i64 dbase) {
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        i64 r = i, so = sbase, dst_off = dbase;
        for (int k = (int)dims.rank - 1; k >= 0; --k) {
          const i64 c = r % dims.v[k];
          r /= dims.v[k];
          so += c * ss.v[k];
          dst_off += c * ds.v[k];
        }
        dst[dst_off] = src[so];
      }
    }

    // ---- Pad ----
    template <class E>
    DEVICE void padElements(
        const E* src, E* dst, i64 n, const Dims& out, const Vec& before, const Vec& in, const Vec& inStrides,
        i64 reflect) {
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        i64 r = i, off = 0;
        bool zero = false;
        for (int k = (int)out.rank - 1; k >= 0; --k) {
          const i64 j = r % out.v[k];
          r /= out.v[k];
          i64 p = j - before.v[k];
          const i64 m = in.v[k];
          if (p < 0 || p >= m) {
            if (reflect) p = p < 0 ? -p : 2 * (m - 1) - p;
            else zero = true;
          }
          off += p * inStrides.v[k];
        }
        dst[i] = zero ? E(0) : src[off];
      }
    }

    #define COPY(BYTES, E)                                                                        \
      KERNEL copy_b##BYTES(const E* src, E* dst, i64 n, Dims dims, Vec ss, i64 sbase, Vec ds, i64 dbase) { \
        stridedCopy<E>(src, dst, n, dims, ss, sbase, ds, dbase);                                  \
      }                                                                                           \
      KERNEL pad_b##BYTES(const E* src, E* dst, i64 n, Dims out, Vec before, Vec in, Vec inStrides, i64 reflect) { \
        padElements<E>(src, dst, n, out, before, in, inStrides, reflect);                         \
      }

    // ---- PadBackward (adjoint of reflect padding) ----
    template <class T>
    DEVICE void padBackward(
        const T* g, T* out, i64 n, const Dims& interior, const Vec& before, const Vec& after, const Vec& gStrides) {
      typedef typename Elem<T>::C C;
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        // Per axis, the padded coordinates that hold this interior coordinate, in increasing order:
        // the left mirror, the element itself, the right mirror.
        i64 cand[MAX_RANK][3];
        int count[MAX_RANK], idx[MAX_RANK];
        i64 r = i;
        const int rank = (int)interior.rank;
        for (int k = rank - 1; k >= 0; --k) {
          const i64 m = interior.v[k], b = before.v[k], a = after.v[k];
          const i64 c = r % m;
          r /= m;
          int q = 0;
          if (c >= 1 && c <= b) cand[k][q++] = b - c;
          cand[k][q++] = b + c;
          if (c >= m - 1 - a && c <= m - 2) cand[k][q++] = b + 2 * (m - 1) - c;
          count[k] = q;
          idx[k] = 0;
        }
        C acc = 0;
        for (;;) {
          i64 off = 0;
          for (int k = 0; k < rank; ++k) off += cand[k][idx[k]] * gStrides.v[k];
          acc += Elem<T>::load(g[off]);
          int k = rank - 1;
          while (k >= 0) {
            if (++idx[k] < count[k]) break;
            idx[k] = 0;
            --k;
          }
          if (k < 0) break;
        }
        out[i] = Elem<T>::store(acc);
      }
    }

    #define PAD_BACKWARD(T, SUFFIX)                                                               \
      KERNEL padBackward_##SUFFIX(const T* g, T* out, i64 n, Dims interior, Vec before, Vec after, Vec gStrides) { \
        padBackward<T>(g, out, n, interior, before, after, gStrides);                             \
      }
    """#
}
