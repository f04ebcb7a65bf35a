import SegCore

// MARK: - Max pooling kernels

/// maxPool2d and its backward on NHWC, for f32, f16, bf16 and f64. Both pick, per window, the
/// first maximum in row-major (kh, kw) order, a NaN winning so that it shows, as the reference.
///
/// `maxPool2d_<dtype>(x, y, pool)`: one thread per output element. `maxPool2dBackward_<dtype>(x,
/// dy, dx, pool)`: where windows do not overlap, one thread per window as `skipGradient` below
/// (with no skip); else one thread per input element, which adds dy of every window whose maximum
/// it is, in row-major window order (a gather: no atomics, deterministic). `pool` holds
/// (n, h, w, c, oh, ow, kh, kw, sh, sw).
///
/// `skipGradient_<dtype>(x, dy, g, out, skip)`, the encoder output's gradient from its pool and its
/// skip (`SkipGradient`), for windows that do not overlap: one thread per stride cell (the window at
/// its top left) and 16-byte vector of channels (one channel when the channels or the buffers do
/// not allow vectors), which finds the window's maximum once and writes every pixel of the cell.
/// `skip` holds the Pool fields then (gh, gw, ca, oy, ox, relu), every count below 2^32.
enum PoolingKernels {
  static let family = KernelFamily(
    name: "pooling", body: body,
    instances: KernelNames.floats.flatMap { d -> [(String, String)] in
      [
        (KernelNames.name(OpKind.maxPool2d.rawValue, d), "POOL(\(KernelNames.cType(d)), \(d.rawValue))"),
        (KernelNames.name(OpKind.maxPool2dBackward.rawValue, d), ""),
        (KernelNames.name(OpKind.skipGradient.rawValue, d), ""),
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

    // ---- The skip connection's gradient at an encoder output ----
    // out = maxPool2dBackward(x, dy) + g's channels from ca on, placed at (y - oy, x - ox) of g
    // (zero outside it), then, when relu, kept where x > 0: as the separate kernels, the sum
    // rounded to T once.
    struct SkipGrad { Pool p; i64 gh, gw, ca, oy, ox, relu; };

    // L elements at p: one 16-byte access when L fills it.
    template <class T, int L> DEVICE void loadUnit(const T* p, T (&e)[L]) {
      if (L * sizeof(T) == 16) loadVec<T, L>(p, e);
      else for (int l = 0; l < L; ++l) e[l] = p[l];
    }
    template <class T, int L> DEVICE void storeUnit(T* p, const T (&e)[L]) {
      if (L * sizeof(T) == 16) storeVec<T, L>(p, e);
      else for (int l = 0; l < L; ++l) p[l] = e[l];
    }

    // L channels a thread (1, or a 16-byte vector of them); 32-bit indices throughout.
    template <class T, int L>
    DEVICE void skipGradientCells(const T* __restrict__ x, const T* __restrict__ dy, const T* __restrict__ g,
        T* __restrict__ out, const SkipGrad& s) {
      typedef C_OF(T) C;
      const Pool& p = s.p;
      const u32 h = (u32)p.h, w = (u32)p.w, c = (u32)p.c, oh = (u32)p.oh, ow = (u32)p.ow;
      const u32 kh = (u32)p.kh, kw = (u32)p.kw, sh = (u32)p.sh, sw = (u32)p.sw;
      const u32 gh = (u32)s.gh, gw = (u32)s.gw, gc = (u32)s.ca + c, ca = (u32)s.ca, oy = (u32)s.oy, ox = (u32)s.ox;
      const u32 units = c / L, cellsH = (h + sh - 1) / sh, cellsW = (w + sw - 1) / sw;
      const u32 total = (u32)p.n * cellsH * cellsW * units;
    #pragma unroll 1
      for (i64 t = gridStart(); t < total; t += gridStep()) {
        u32 r = (u32)t;
        const u32 ch = r % units * L;
        r /= units;
        const u32 j = r % cellsW;
        r /= cellsW;
        const u32 i = r % cellsH, b = r / cellsH;
        // Per channel, the window's first maximum (row-major, a NaN winning) as u * kw + v, and dy.
        const bool pooled = i < oh && j < ow;
        u32 arg[L];
        C grad[L];
        if (pooled) {
          C best[L];
          T e[L];
          loadUnit<T, L>(x + ((b * h + i * sh) * w + j * sw) * c + ch, e);
    #pragma unroll
          for (int l = 0; l < L; ++l) { best[l] = Elem<T>::load(e[l]); arg[l] = 0; }
          for (u32 u = 0; u < kh; ++u) {
            for (u32 v = 0; v < kw; ++v) {
              loadUnit<T, L>(x + ((b * h + i * sh + u) * w + j * sw + v) * c + ch, e);
    #pragma unroll
              for (int l = 0; l < L; ++l) {
                const C xv = Elem<T>::load(e[l]);
                if (xv > best[l] || (xv != xv && best[l] == best[l])) { best[l] = xv; arg[l] = u * kw + v; }
              }
            }
          }
          loadUnit<T, L>(dy + ((b * oh + i) * ow + j) * c + ch, e);
    #pragma unroll
          for (int l = 0; l < L; ++l) grad[l] = C(0) + Elem<T>::load(e[l]);  // as maxPoolBackward's sum
        }
        for (u32 u = 0; u < sh; ++u) {
          const u32 y = i * sh + u;
          if (y >= h) break;
          for (u32 v = 0; v < sw; ++v) {
            const u32 xx = j * sw + v;
            if (xx >= w) break;
            // Left of or above g's window wraps around as unsigned: one comparison per axis.
            const u32 gy = y - oy, gx = xx - ox;
            const bool inside = gy < gh && gx < gw;
            const bool inWindow = pooled && u < kh && v < kw;
            const u32 offset = ((b * h + y) * w + xx) * c + ch;
            T skip[L], mask[L], result[L];
            if (inside) loadUnit<T, L>(g + ((b * gh + gy) * gw + gx) * gc + ca + ch, skip);
            if (s.relu) loadUnit<T, L>(x + offset, mask);
    #pragma unroll
            for (int l = 0; l < L; ++l) {
              const C fromPool = inWindow && arg[l] == u * kw + v ? grad[l] : C(0);
              const C sum = Elem<T>::load(Elem<T>::store(fromPool + (inside ? Elem<T>::load(skip[l]) : C(0))));
              result[l] = Elem<T>::store(s.relu && !(Elem<T>::load(mask[l]) > C(0)) ? C(0) : sum);
            }
            storeUnit<T, L>(out + offset, result);
          }
        }
      }
    }

    template <class T>
    DEVICE void skipGradient(const T* x, const T* dy, const T* g, T* out, const SkipGrad& s) {
      const int N = 16 / sizeof(T);
      if (s.p.c % N == 0 && s.ca % N == 0 && aligned16(x) && aligned16(dy) && aligned16(g) && aligned16(out)) {
        skipGradientCells<T, 16 / sizeof(T)>(x, dy, g, out, s);
      } else {
        skipGradientCells<T, 1>(x, dy, g, out, s);
      }
    }

    // Max pooling's backward: per window when windows do not overlap (the skip gradient with no
    // skip: g's window is empty) and every index fits 32 bits, else the gather above.
    template <class T>
    DEVICE void maxPoolBackwardAny(const T* x, const T* dy, T* dx, const Pool& p) {
      if (p.sh >= p.kh && p.sw >= p.kw && p.n * p.h * p.w * p.c < 4294967296LL) {
        const SkipGrad s = {p, 0, 0, 0, 0, 0, 0};
        skipGradient<T>(x, dy, x, dx, s);
      } else {
        maxPoolBackward<T>(x, dy, dx, p);
      }
    }

    #define POOL(T, SUFFIX)                                                                         \
      KERNEL maxPool2d_##SUFFIX(const T* x, T* y, Pool p) { maxPool<T>(x, y, p); }                  \
      KERNEL maxPool2dBackward_##SUFFIX(const T* x, const T* dy, T* dx, Pool p) { maxPoolBackwardAny<T>(x, dy, dx, p); } \
      KERNEL skipGradient_##SUFFIX(const T* x, const T* dy, const T* g, T* out, SkipGrad s) { skipGradient<T>(x, dy, g, out, s); }
    """#
}
