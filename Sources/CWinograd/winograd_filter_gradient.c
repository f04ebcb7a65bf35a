// Winograd F(4x4,3x3) backward-filter kernels (see CWinograd.h): dL/dg = Gᵀ [Σ over tiles
// (Bᵀ d B) ⊙ (A dy Aᵀ)] G. The input tiles' transform is the forward one; here are the output
// gradient's transform, the 36 products reducing over tiles, and the transform back to 3x3.
#include "CWinograd.h"
#include "winograd_simd.h"

#include <string.h>

// MARK: - Output-gradient transform A dy Aᵀ

/// A on four vectors a stride apart, six results (A is the transpose of the forward output
/// transform's Aᵀ).
INLINE void gradient_rows(const v16 *d, int s, v16 *out, int os) {
  v16 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
  v16 even = d0 + d2, odd = d1 + d3, even4 = d0 + 4 * d2, odd2 = 2 * d1 + 8 * d3;
  out[0] = d0;
  out[os] = even + odd;
  out[2 * os] = even - odd;
  out[3 * os] = even4 + odd2;
  out[4 * os] = even4 - odd2;
  out[5 * os] = d3;
}

/// By runs of consecutive tiles in one tile row, a channel block at a time (four row streams of
/// one plane, where tile by tile read sixteen of four planes), prefetching two tiles ahead: the
/// transform waited on memory (a 568x568 dy took 115-200 ns a tile and block, 31 on cached rows;
/// 77 so).
INLINE void gradient_body(const wino_problem *p, const float *dy, long first, long count, float *m, long stride) {
  long ob_count = (p->o + 15) / 16, ld = ob_count * 16;
  long tiles_h = (p->oh + 3) / 4, tiles_w = (p->ow + 3) / 4, per_image = tiles_h * tiles_w;
  v16 d[16], t[24], out[36];
  for (long run = first, length; run < first + count; run += length) {
    long img = run / per_image, r = run % per_image, tx0 = r % tiles_w;
    length = tiles_w - tx0 < first + count - run ? tiles_w - tx0 : first + count - run;
    long y0 = (r / tiles_w) * 4, rows = p->oh - y0 < 4 ? p->oh - y0 : 4;
    for (long ob = 0; ob < ob_count; ob++) {
      const float *plane = dy + (img * ob_count + ob) * p->oh * p->ow * 16;
      for (long tile = 0; tile < length; tile++) {
        long x0 = (tx0 + tile) * 4, cols = p->ow - x0 < 4 ? p->ow - x0 : 4;
        if (x0 + 12 <= p->ow)
          for (int i = 0; i < rows; i++)
            for (int j = 8; j < 12; j++) __builtin_prefetch(plane + ((y0 + i) * p->ow + x0 + j) * 16, 0, 3);
        // Past the output's edge the gradient is zero: those tile positions are no outputs.
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++) d[4 * i + j] = i < rows && j < cols ? load(plane + ((y0 + i) * p->ow + x0 + j) * 16) : (v16)0;
        for (int j = 0; j < 4; j++) gradient_rows(d + j, 4, t + j, 4);
        for (int i = 0; i < 6; i++) gradient_rows(t + 4 * i, 1, out + 6 * i, 1);
        float *row = m + (run - first + tile) * ld + ob * 16;
        for (int e = 0; e < 36; e++) store(row + e * stride, out[e]);
      }
    }
  }
}

AVX512 static void gradient_avx512(const wino_problem *p, const float *dy, long f, long n, float *m, long s) { gradient_body(p, dy, f, n, m, s); }
AVX2 static void gradient_avx2(const wino_problem *p, const float *dy, long f, long n, float *m, long s) { gradient_body(p, dy, f, n, m, s); }
static void gradient_baseline(const wino_problem *p, const float *dy, long f, long n, float *m, long s) { gradient_body(p, dy, f, n, m, s); }

void wino_gradient_transform(int isa, const wino_problem *p, const float *dy, long first, long count, float *m, long stride) {
  if (isa == WINO_ISA_AVX512) gradient_avx512(p, dy, first, count, m, stride);
  else if (isa == WINO_ISA_AVX2) gradient_avx2(p, dy, first, count, m, stride);
  else gradient_baseline(p, dy, first, count, m, stride);
}

// MARK: - Products reducing over tiles

/// c[0..<MR][0..<16 NR] (+)= Σ_q a[q][0..<MR]ᵀ b[q][0..<16 NR] over k tiles q: MR x NR
/// accumulators in registers, each tile's MR values of a broadcast and its row of b loaded once.
#define TBLOCK(NAME, MR, NR)                                                                                \
  INLINE void NAME(const float *a, long lda, const float *b, long ldb, float *c, long ldc, long k, int add) { \
    v16 acc[MR][NR];                                                                                        \
    _Pragma("unroll") for (int r = 0; r < MR; r++) _Pragma("unroll") for (int j = 0; j < NR; j++)           \
      acc[r][j] = add ? load(c + r * ldc + 16 * j) : (v16)0;                                                \
    for (long q = 0; q < k; q++) {                                                                          \
      v16 bq[NR];                                                                                           \
      _Pragma("unroll") for (int j = 0; j < NR; j++) bq[j] = load(b + q * ldb + 16 * j);                    \
      _Pragma("unroll") for (int r = 0; r < MR; r++) {                                                      \
        v16 av = (v16)a[q * lda + r];                                                                       \
        _Pragma("unroll") for (int j = 0; j < NR; j++) acc[r][j] += av * bq[j];                             \
      }                                                                                                     \
    }                                                                                                       \
    _Pragma("unroll") for (int r = 0; r < MR; r++) _Pragma("unroll") for (int j = 0; j < NR; j++)           \
      store(c + r * ldc + 16 * j, acc[r][j]);                                                               \
  }

// Rows come in multiples of 16 (padded channels), so MR = 8 and 4 need no remainders.
TBLOCK(t8x3, 8, 3)
TBLOCK(t8x2, 8, 2)
TBLOCK(t8x1, 8, 1)
TBLOCK(t4x1, 4, 1)

/// dU = Vᵀ M for one e: V k x rows, M k x n (both row-major), dU rows x n; by blocks of MR rows
/// and NR vectors of columns, each block's tiles streamed through once.
#define TPRODUCT(NAME, MR, WIDE, NR, PAIR, PR, NARROW)                                                      \
  INLINE void NAME(const float *v, long ldv, const float *m, long ldm, float *du, long rows, long n, long k, int add) { \
    for (long r0 = 0; r0 < rows; r0 += MR) {                                                                \
      long j0 = 0;                                                                                          \
      /* NR + 1 vectors left go as two narrower blocks, not a wide one and a thin one. */                  \
      for (; j0 + 16 * NR <= n && n - j0 != 16 * (NR + 1); j0 += 16 * NR)                                  \
        WIDE(v + r0, ldv, m + j0, ldm, du + r0 * n + j0, n, k, add);                                        \
      for (; j0 + 16 * PR <= n; j0 += 16 * PR) PAIR(v + r0, ldv, m + j0, ldm, du + r0 * n + j0, n, k, add); \
      for (; j0 < n; j0 += 16) NARROW(v + r0, ldv, m + j0, ldm, du + r0 * n + j0, n, k, add);              \
    }                                                                                                       \
  }
// AVX-512: 8 x 3 vectors (24 of its 32 registers), 8 x 2 for what is left (64 output channels
// are 8 x 2 twice). AVX2 (two registers a vector): 8 x 1. Baseline SSE (four registers a vector):
// 4 x 1, spilled a little.
TPRODUCT(tproduct_8x3, 8, t8x3, 3, t8x2, 2, t8x1)
TPRODUCT(tproduct_8x1, 8, t8x1, 1, t8x1, 1, t8x1)
TPRODUCT(tproduct_4x1, 4, t4x1, 1, t4x1, 1, t4x1)

#define TPRODUCTS(NAME, KERNEL)                                                                             \
  static void NAME(const float *v, long vs, const float *m, long ms, float *du, long tiles, long c, long o, long e0, long e1, \
                   int add) {                                                                               \
    for (long e = e0; e < e1; e++) KERNEL(v + e * vs, c, m + e * ms, o, du + e * c * o, c, o, tiles, add);  \
  }
AVX512 TPRODUCTS(tproducts_avx512, tproduct_8x3)
AVX2 TPRODUCTS(tproducts_avx2, tproduct_8x1)
TPRODUCTS(tproducts_baseline, tproduct_4x1)

void wino_filter_gradient_products(int isa, const float *v, long v_stride, const float *m, long m_stride, float *du, long tiles,
                                   long c_padded, long o_padded, long e_begin, long e_end, int accumulate) {
  if (isa == WINO_ISA_AVX512) tproducts_avx512(v, v_stride, m, m_stride, du, tiles, c_padded, o_padded, e_begin, e_end, accumulate);
  else if (isa == WINO_ISA_AVX2) tproducts_avx2(v, v_stride, m, m_stride, du, tiles, c_padded, o_padded, e_begin, e_end, accumulate);
  else tproducts_baseline(v, v_stride, m, m_stride, du, tiles, c_padded, o_padded, e_begin, e_end, accumulate);
}

// MARK: - Filter-gradient transform Gᵀ dU G

/// Gᵀ on six vectors a stride apart, three results (G as the forward filter transform has it).
INLINE void filter_gradient_rows(const v16 *u, int s, v16 *out, int os) {
  v16 u0 = u[0], u1 = u[s], u2 = u[2 * s], u3 = u[3 * s], u4 = u[4 * s], u5 = u[5 * s];
  v16 p12 = u1 + u2, d12 = u2 - u1, p34 = u3 + u4, d34 = u3 - u4;
  out[0] = u0 / 4 - p12 / 6 + p34 / 24;
  out[os] = d12 / 6 + d34 / 12;
  out[2 * os] = (p34 - p12) / 6 + u5;
}

INLINE void filter_gradient_body(const float *du, long parts, long part_stride, long c, long o, long cp, long op, long k0, long k1,
                                 float *dg) {
  v16 u36[36], t[18], g9[9];
  for (long k = k0; k < k1; k++)
    for (long j0 = 0; j0 < o; j0 += 16) {
      for (int e = 0; e < 36; e++) {
        const float *src = du + e * cp * op + k * op + j0;
        v16 sum = load(src);
        for (long part = 1; part < parts; part++) sum += load(src + part * part_stride);
        u36[e] = sum;
      }
      for (int j = 0; j < 6; j++) filter_gradient_rows(u36 + j, 6, t + j, 6);
      for (int i = 0; i < 3; i++) filter_gradient_rows(t + 6 * i, 1, g9 + 3 * i, 1);
      long lanes = o - j0 < 16 ? o - j0 : 16;
      for (int tap = 0; tap < 9; tap++) {
        float *dst = dg + (tap * c + k) * o + j0;
        if (lanes == 16) {
          store(dst, g9[tap]);
        } else {
          float lane[16];
          store(lane, g9[tap]);
          memcpy(dst, lane, lanes * sizeof(float));
        }
      }
    }
}

AVX512 static void filter_gradient_avx512(const float *du, long n, long s, long c, long o, long cp, long op, long k0, long k1, float *dg) {
  filter_gradient_body(du, n, s, c, o, cp, op, k0, k1, dg);
}
AVX2 static void filter_gradient_avx2(const float *du, long n, long s, long c, long o, long cp, long op, long k0, long k1, float *dg) {
  filter_gradient_body(du, n, s, c, o, cp, op, k0, k1, dg);
}
static void filter_gradient_baseline(const float *du, long n, long s, long c, long o, long cp, long op, long k0, long k1, float *dg) {
  filter_gradient_body(du, n, s, c, o, cp, op, k0, k1, dg);
}

void wino_filter_gradient_transform(int isa, const float *du, long parts, long part_stride, long c, long o, long c_padded,
                                    long o_padded, long k_begin, long k_end, float *dg) {
  if (isa == WINO_ISA_AVX512) filter_gradient_avx512(du, parts, part_stride, c, o, c_padded, o_padded, k_begin, k_end, dg);
  else if (isa == WINO_ISA_AVX2) filter_gradient_avx2(du, parts, part_stride, c, o, c_padded, o_padded, k_begin, k_end, dg);
  else filter_gradient_baseline(du, parts, part_stride, c, o, c_padded, o_padded, k_begin, k_end, dg);
}
