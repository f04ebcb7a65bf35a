import SegCore

// MARK: - Max pooling kernels

/// maxPool2d and its backward on NHWC, for f32, f16, bf16 and f64. Both pick, per window, the
/// first maximum in row-major (kh, kw) order, a NaN winning so that it shows, as the reference.
///
/// `maxPool2d_<dtype>(x, y, pool)`: one thread per output element. `maxPool2dBackward_<dtype>(x,
/// dy, dx, pool)`: one thread per input element, which adds dy of every window whose maximum it is,
/// in row-major window order (a gather: no atomics, deterministic). `pool` holds
/// (n, h, w, c, oh, ow, kh, kw, sh, sw).
enum PoolingKernels {
  static let family = KernelFamily(
    name: "pooling", body: body,
    instances: KernelNames.floats.flatMap { d -> [(String, String)] in
      [
        (KernelNames.name(OpKind.maxPool2d.rawValue, d), "POOL(\(KernelNames.cType(d)), \(d.rawValue))"),
        (KernelNames.name(OpKind.maxPool2dBackward.rawValue, d), ""),
      ]
    })

  static let body = #"""
    // ---- Max pooling ----
    struct Pool { i64 n, h, w, c, oh, ow, kh, kw, sh, sw; };

    // The coordinates (b, y, x, ch) of flat NHWC index e over [*, h, w, c], in 32-bit division
    // when e fits (several times cheaper on a GPU than 64-bit).
    DEVICE void coordinates(i64 e, i64 h, i64 w, i64 c, i64& b, i64& y, i64& x, i64& ch) {
      if (e < 4294967295LL) {
        const u32 cc = divisor32(c), ww = divisor32(w), hh = divisor32(h);
        u32 r = (u32)e;
        ch = r % cc; r /= cc;
        x = r % ww; r /= ww;
        y = r % hh; b = r / hh;
        return;
      }
      u64 r = (u64)e, q;
      r = udiv(r, (u64)c, q); ch = (i64)q;
      r = udiv(r, (u64)w, q); x = (i64)q;
      b = (i64)udiv(r, (u64)h, q); y = (i64)q;
    }

    // The flat index of the first maximum of window (b, i, j, ch).
    template <class T>
    DEVICE i64 windowArgmax(const T* x, const Pool& p, i64 b, i64 i, i64 j, i64 ch) {
      typedef typename Elem<T>::C C;
      i64 best = ((b * p.h + i * p.sh) * p.w + j * p.sw) * p.c + ch;
      C bv = Elem<T>::load(x[best]);
      for (i64 u = 0; u < p.kh; ++u) {
        for (i64 v = 0; v < p.kw; ++v) {
          const i64 idx = ((b * p.h + i * p.sh + u) * p.w + j * p.sw + v) * p.c + ch;
          const C xv = Elem<T>::load(x[idx]);
          if (xv > bv || (xv != xv && bv == bv)) { best = idx; bv = xv; }
        }
      }
      return best;
    }

    template <class T>
    DEVICE void maxPool(const T* x, T* y, const Pool& p) {
      const i64 total = p.n * p.oh * p.ow * p.c;
      #pragma unroll 1
      for (i64 o = gridStart(); o < total; o += gridStep()) {
        i64 b, i, j, ch;
        coordinates(o, p.oh, p.ow, p.c, b, i, j, ch);
        y[o] = x[windowArgmax(x, p, b, i, j, ch)];
      }
    }

    template <class T>
    DEVICE void maxPoolBackward(const T* x, const T* dy, T* dx, const Pool& p) {
      typedef typename Elem<T>::C C;
      const i64 total = p.n * p.h * p.w * p.c;
      #pragma unroll 1
      for (i64 e = gridStart(); e < total; e += gridStep()) {
        i64 b, hy, wx, ch;
        coordinates(e, p.h, p.w, p.c, b, hy, wx, ch);
        // Windows i with i*sh <= hy < i*sh + kh, and likewise j.
        const i64 ti = hy - p.kh + 1, tj = wx - p.kw + 1;
        const i64 iLo = ti > 0 ? quotient(ti + p.sh - 1, p.sh) : 0, jLo = tj > 0 ? quotient(tj + p.sw - 1, p.sw) : 0;
        const i64 iMax = quotient(hy, p.sh), jMax = quotient(wx, p.sw);
        const i64 iHi = iMax < p.oh - 1 ? iMax : p.oh - 1;
        const i64 jHi = jMax < p.ow - 1 ? jMax : p.ow - 1;
        C acc = 0;
        for (i64 i = iLo; i <= iHi; ++i) {
          for (i64 j = jLo; j <= jHi; ++j) {
            if (windowArgmax(x, p, b, i, j, ch) == e) acc += Elem<T>::load(dy[((b * p.oh + i) * p.ow + j) * p.c + ch]);
          }
        }
        dx[e] = Elem<T>::store(acc);
      }
    }

    #define POOL(T, SUFFIX)                                                                         \
      KERNEL maxPool2d_##SUFFIX(const T* x, T* y, Pool p) { maxPool<T>(x, y, p); }                  \
      KERNEL maxPool2dBackward_##SUFFIX(const T* x, const T* dy, T* dx, Pool p) { maxPoolBackward<T>(x, dy, dx, p); }
    """#
}
