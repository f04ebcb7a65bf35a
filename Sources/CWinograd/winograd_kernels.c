// Winograd F(4x4,3x3) kernels (see CWinograd.h). Each body is written once on 16-lane vectors
// and inlined into one entry point per instruction set (a function's target attribute lets the
// compiler use that set in everything inlined into it).
#include "CWinograd.h"
#include "winograd_simd.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xmmintrin.h>

// MARK: - Processor

int wino_isa(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return WINO_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return WINO_ISA_AVX2;
  return WINO_ISA_BASELINE;
}

long wino_last_level_cache_bytes(void) {
  static long cached;
  long bytes = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (bytes) return bytes;
  long value;
  char unit = 0;
  bytes = 32L << 20;
  FILE *file = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
  if (file) {
    if (fscanf(file, "%ld%c", &value, &unit) >= 1 && value > 0)
      bytes = unit == 'K' ? value << 10 : unit == 'M' ? value << 20 : value;
    fclose(file);
  }
  __atomic_store_n(&cached, bytes, __ATOMIC_RELAXED);
  return bytes;
}

// MARK: - Input transform Bᵀ d B

/// Bᵀ on six vectors a stride apart.
INLINE void input_rows(const v16 *d, int s, v16 *out, int os) {
  v16 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  v16 a = d4 - 4 * d2, b = d3 - 4 * d1, c = d4 - d2, e = 2 * (d3 - d1);
  out[0] = 4 * d0 - 5 * d2 + d4;
  out[os] = a + b;
  out[2 * os] = a - b;
  out[3 * os] = c + e;
  out[4 * os] = c - e;
  out[5 * os] = 4 * d1 - 5 * d3 + d5;
}

/// Bᵀ down one column of a tile's 6x6 input (six vectors a row apart, zero outside the image).
INLINE void input_column(const wino_problem *p, const float *plane, long y0, long xx, int inside, v16 *out) {
  v16 d[6];
  if (inside) {
    for (int i = 0; i < 6; i++) d[i] = load(plane + ((y0 + i) * p->w + xx) * 16);
  } else {
    for (int i = 0; i < 6; i++) {
      long yy = y0 + i;
      d[i] = (yy >= 0 && yy < p->h && xx >= 0 && xx < p->w) ? load(plane + (yy * p->w + xx) * 16) : (v16)0;
    }
  }
  input_rows(d, 1, out, 1);
}

/// By runs of consecutive tiles in one tile row, a channel block at a time: a tile's first two
/// columns are the previous tile's last two, so each tile takes Bᵀ down four new columns only
/// (a third less work and loads), and prefetches the four columns the next one reads (the
/// hardware's prefetchers missed those: the transform took twice as long).
INLINE void input_body(const wino_problem *p, const float *x, long first, long count, float *v, long stride) {
  long cb_count = (p->c + 15) / 16, ld = cb_count * 16;
  long tiles_h = (p->oh + 3) / 4, tiles_w = (p->ow + 3) / 4, per_image = tiles_h * tiles_w;
  v16 col[6][6], o[6];
  for (long run = first, length; run < first + count; run += length) {
    long img = run / per_image, r = run % per_image, tx0 = r % tiles_w;
    length = tiles_w - tx0 < first + count - run ? tiles_w - tx0 : first + count - run;
    long y0 = (r / tiles_w) * 4 - p->pad_top;
    int rows_inside = y0 >= 0 && y0 + 6 <= p->h;
    for (long cb = 0; cb < cb_count; cb++) {
      const float *plane = x + (img * cb_count + cb) * p->h * p->w * 16;
      for (long t = 0; t < length; t++) {
        long x0 = (tx0 + t) * 4 - p->pad_left;
        int inside = rows_inside && x0 >= 0 && x0 + 6 <= p->w;
        if (rows_inside && x0 + 10 <= p->w)
          for (int i = 0; i < 6; i++)
            for (int j = 6; j < 10; j++) __builtin_prefetch(plane + ((y0 + i) * p->w + x0 + j) * 16, 0, 3);
        if (t > 0)
          for (int i = 0; i < 6; i++) col[0][i] = col[4][i], col[1][i] = col[5][i];
        for (int j = t > 0 ? 2 : 0; j < 6; j++) input_column(p, plane, y0, x0 + j, inside, col[j]);
        float *row = v + (run - first + t) * ld + cb * 16;
        for (int i = 0; i < 6; i++) {
          v16 line[6] = {col[0][i], col[1][i], col[2][i], col[3][i], col[4][i], col[5][i]};
          input_rows(line, 1, o, 1);
          for (int j = 0; j < 6; j++) store(row + (6 * i + j) * stride, o[j]);
        }
      }
    }
  }
}

AVX512 static void input_avx512(const wino_problem *p, const float *x, long f, long n, float *v, long s) { input_body(p, x, f, n, v, s); }
AVX2 static void input_avx2(const wino_problem *p, const float *x, long f, long n, float *v, long s) { input_body(p, x, f, n, v, s); }
static void input_baseline(const wino_problem *p, const float *x, long f, long n, float *v, long s) { input_body(p, x, f, n, v, s); }

void wino_input_transform(int isa, const wino_problem *p, const float *x, long first, long count, float *v, long stride) {
  if (isa == WINO_ISA_AVX512) input_avx512(p, x, first, count, v, stride);
  else if (isa == WINO_ISA_AVX2) input_avx2(p, x, first, count, v, stride);
  else input_baseline(p, x, first, count, v, stride);
}

// MARK: - Products

/// c[0..<MR][0..<16 NR] = a[0..<MR][0..<k] b[0..<k][0..<16 NR]: MR x NR accumulators held in
/// registers, a row of b loaded once per k and each a value broadcast.
#define BLOCK(NAME, MR, NR)                                                                                 \
  INLINE void NAME(const float *a, long lda, const float *b, long ldb, float *c, long ldc, long k) {       \
    v16 acc[MR][NR];                                                                                        \
    _Pragma("unroll") for (int r = 0; r < MR; r++) _Pragma("unroll") for (int j = 0; j < NR; j++) acc[r][j] = 0; \
    for (long q = 0; q < k; q++) {                                                                          \
      v16 bq[NR];                                                                                           \
      _Pragma("unroll") for (int j = 0; j < NR; j++) bq[j] = load(b + q * ldb + 16 * j);                    \
      _Pragma("unroll") for (int r = 0; r < MR; r++) {                                                      \
        v16 av = (v16)a[r * lda + q];                                                                       \
        _Pragma("unroll") for (int j = 0; j < NR; j++) acc[r][j] += av * bq[j];                             \
      }                                                                                                     \
    }                                                                                                       \
    _Pragma("unroll") for (int r = 0; r < MR; r++) _Pragma("unroll") for (int j = 0; j < NR; j++)           \
      store(c + r * ldc + 16 * j, acc[r][j]);                                                               \
  }

// The row blocks of each width NR (in vectors of 16): MR rows, then the remainders.
#define BLOCKS(NR) BLOCK(b1_##NR, 1, NR) BLOCK(b2_##NR, 2, NR) BLOCK(b3_##NR, 3, NR) BLOCK(b4_##NR, 4, NR) \
  BLOCK(b5_##NR, 5, NR) BLOCK(b6_##NR, 6, NR)
BLOCKS(1)
BLOCKS(4)

/// U_e is kept in column panels of PANEL floats (the last one narrower), each k x width row-major
/// and contiguous: a panel's rows are then adjacent in memory, which the address translation
/// caches hold, where rows a whole matrix width apart missed them on every row.
#define PANEL 64

/// One matrix product M = V U by blocks of MR rows and NR vectors of columns, a column panel of U
/// (k x 16 NR) reused by every row block while it is in cache.
#define PRODUCT(NAME, MR, NR)                                                                               \
  INLINE void NAME(const float *a, const float *b, float *c, long rows, long k, long n) {                   \
    for (long j0 = 0; j0 < n; j0 += 16 * NR) {                                                              \
      long width = (n - j0) / 16 < NR ? (n - j0) / 16 : NR;                                                 \
      for (long r0 = 0; r0 < rows; r0 += MR) {                                                              \
        long h = rows - r0 < MR ? rows - r0 : MR;                                                           \
        const float *ar = a + r0 * k, *bj = b + (j0 / PANEL) * PANEL * k + j0 % PANEL;                      \
        long ldb = n - j0 / PANEL * PANEL < PANEL ? n - j0 / PANEL * PANEL : PANEL;                          \
        float *cr = c + r0 * n + j0;                                                                        \
        if (width == NR) {                                                                                  \
          switch (h) {                                                                                      \
          case MR: PRODUCT_BLOCK_##MR(NR); break;                                                           \
          default: product_rows_##NR(ar, k, bj, ldb, cr, n, k, h); break;                                   \
          }                                                                                                 \
        } else {                                                                                            \
          for (long j = 0; j < width; j++) product_rows_1(ar, k, bj + 16 * j, ldb, cr + 16 * j, n, k, h);  \
        }                                                                                                   \
      }                                                                                                     \
    }                                                                                                       \
  }

#define PRODUCT_ROWS(NR)                                                                                    \
  INLINE void product_rows_##NR(const float *a, long lda, const float *b, long ldb, float *c, long ldc, long k, long h) { \
    switch (h) {                                                                                            \
    case 1: b1_##NR(a, lda, b, ldb, c, ldc, k); break;                                                      \
    case 2: b2_##NR(a, lda, b, ldb, c, ldc, k); break;                                                      \
    case 3: b3_##NR(a, lda, b, ldb, c, ldc, k); break;                                                      \
    case 4: b4_##NR(a, lda, b, ldb, c, ldc, k); break;                                                      \
    case 5: b5_##NR(a, lda, b, ldb, c, ldc, k); break;                                                      \
    default: b6_##NR(a, lda, b, ldb, c, ldc, k); break;                                                     \
    }                                                                                                       \
  }
PRODUCT_ROWS(1)
PRODUCT_ROWS(4)

#define PRODUCT_BLOCK_6(NR) b6_##NR(ar, k, bj, ldb, cr, n, k)
#define PRODUCT_BLOCK_4(NR) b4_##NR(ar, k, bj, ldb, cr, n, k)
// AVX-512: 6 x 4 vectors (24 of its 32 registers). AVX2 (a vector is two registers): 6 x 1.
// Baseline SSE (four registers a vector): 4 x 1 is still 16 registers, spilled a little.
PRODUCT(product_6x4, 6, 4)
PRODUCT(product_6x1, 6, 1)
PRODUCT(product_4x1, 4, 1)

#define PRODUCTS(NAME, KERNEL)                                                                              \
  static void NAME(const float *v, long vs, const float *u, float *m, long ms, long rows, long c, long o, long e0, long e1) { \
    for (long e = e0; e < e1; e++) KERNEL(v + e * vs, u + e * c * o, m + e * ms, rows, c, o);               \
  }
AVX512 PRODUCTS(products_avx512, product_6x4)
AVX2 PRODUCTS(products_avx2, product_6x1)
PRODUCTS(products_baseline, product_4x1)

void wino_products(int isa, const float *v, long v_stride, const float *u, float *m, long m_stride, long rows, long c_padded,
                   long o_padded, long e_begin, long e_end) {
  if (isa == WINO_ISA_AVX512) products_avx512(v, v_stride, u, m, m_stride, rows, c_padded, o_padded, e_begin, e_end);
  else if (isa == WINO_ISA_AVX2) products_avx2(v, v_stride, u, m, m_stride, rows, c_padded, o_padded, e_begin, e_end);
  else products_baseline(v, v_stride, u, m, m_stride, rows, c_padded, o_padded, e_begin, e_end);
}

// MARK: - Output transform Aᵀ m A

/// Aᵀ on six vectors a stride apart, four results.
INLINE void output_rows(const v16 *m, int s, v16 *out, int os) {
  v16 m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  v16 p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
  out[0] = m0 + p12 + p34;
  out[os] = d12 + 2 * d34;
  out[2 * os] = p12 + 4 * p34;
  out[3 * os] = d12 + 8 * d34 + m5;
}

INLINE void output_body(const wino_problem *p, const float *m, long stride, long first, long count, const float *bias, int relu,
                        float *y, int streaming) {
  long ob_count = (p->o + 15) / 16, ld = ob_count * 16;
  long tiles_h = (p->oh + 3) / 4, tiles_w = (p->ow + 3) / 4, per_image = tiles_h * tiles_w;
  v16 mm[36], t[24], out[16];
  for (long tile = first; tile < first + count; tile++) {
    long img = tile / per_image, r = tile % per_image;
    long y0 = (r / tiles_w) * 4, x0 = (r % tiles_w) * 4;
    long rows = p->oh - y0 < 4 ? p->oh - y0 : 4, cols = p->ow - x0 < 4 ? p->ow - x0 : 4;
    const float *row = m + (tile - first) * ld;
    for (long ob = 0; ob < ob_count; ob++) {
      for (int e = 0; e < 36; e++) mm[e] = load(row + e * stride + ob * 16);
      for (int j = 0; j < 6; j++) output_rows(mm + j, 6, t + j, 6);
      for (int i = 0; i < 4; i++) output_rows(t + 6 * i, 1, out + 4 * i, 1);
      v16 b = load(bias + ob * 16);
      float *plane = y + (img * ob_count + ob) * p->oh * p->ow * 16;
      for (long i = 0; i < rows; i++)
        for (long j = 0; j < cols; j++) {
          v16 value = out[4 * i + j] + b;
          if (relu) value = value < 0 ? (v16)0 : value;
          float *at = plane + ((y0 + i) * p->ow + x0 + j) * 16;
          if (streaming) __builtin_nontemporal_store(value, (v16 *)at);
          else store(at, value);
        }
    }
  }
  if (streaming) __builtin_ia32_sfence();
}

AVX512 static void output_avx512(const wino_problem *p, const float *m, long s, long f, long n, const float *b, int relu, float *y, int st) {
  output_body(p, m, s, f, n, b, relu, y, st);
}
AVX2 static void output_avx2(const wino_problem *p, const float *m, long s, long f, long n, const float *b, int relu, float *y, int st) {
  output_body(p, m, s, f, n, b, relu, y, st);
}
static void output_baseline(const wino_problem *p, const float *m, long s, long f, long n, const float *b, int relu, float *y, int st) {
  output_body(p, m, s, f, n, b, relu, y, st);
}

void wino_output_transform(int isa, const wino_problem *p, const float *m, long stride, long first, long count,
                           const float *bias, int relu, float *y) {
  // Streaming stores skip reading each line in before writing it (a pixel's 16 channels are one
  // whole line), for an output that leaves the cache before anyone reads it.
  int st = p->stream_output && ((uintptr_t)y & 63) == 0;
  if (isa == WINO_ISA_AVX512) output_avx512(p, m, stride, first, count, bias, relu, y, st);
  else if (isa == WINO_ISA_AVX2) output_avx2(p, m, stride, first, count, bias, relu, y, st);
  else output_baseline(p, m, stride, first, count, bias, relu, y, st);
}

// MARK: - Filter transform G g Gᵀ

/// G on three vectors a stride apart, six results.
INLINE void filter_rows(const v16 *g, int s, v16 *out, int os) {
  v16 g0 = g[0], g1 = g[s], g2 = g[2 * s], sum = g0 + g2;
  out[0] = g0 / 4;
  out[os] = -(sum + g1) / 6;
  out[2 * os] = -(sum - g1) / 6;
  out[3 * os] = (g0 / 4 + g1 / 2 + g2) / 6;
  out[4 * os] = (g0 / 4 - g1 / 2 + g2) / 6;
  out[5 * os] = g2;
}

INLINE void filter_body(const float *g, long c, long o, long k0, long k1, float *u, long cp, long op, int streaming) {
  v16 g9[9], t[18], u36[36];
  for (long k = k0; k < k1; k++)
    for (long j0 = 0; j0 < o; j0 += 16) {
      long lanes = o - j0 < 16 ? o - j0 : 16;
      for (int tap = 0; tap < 9; tap++) {
        const float *src = g + (tap * c + k) * o + j0;
        if (lanes == 16) {
          g9[tap] = load(src);
        } else {
          float lane[16] = {0};
          memcpy(lane, src, lanes * sizeof(float));
          g9[tap] = load(lane);
        }
      }
      for (int j = 0; j < 3; j++) filter_rows(g9 + j, 3, t + j, 3);
      for (int i = 0; i < 6; i++) filter_rows(t + 3 * i, 1, u36 + 6 * i, 1);
      long panel = j0 / PANEL * PANEL, width = op - panel < PANEL ? op - panel : PANEL;
      for (int e = 0; e < 36; e++) {
        float *at = u + e * cp * op + panel * cp + k * width + j0 - panel;
        if (streaming) __builtin_nontemporal_store(u36[e], (v16 *)at);
        else store(at, u36[e]);
      }
    }
  if (streaming) __builtin_ia32_sfence();
}

AVX512 static void filter_avx512(const float *g, long c, long o, long k0, long k1, float *u, long cp, long op, int st) {
  filter_body(g, c, o, k0, k1, u, cp, op, st);
}
AVX2 static void filter_avx2(const float *g, long c, long o, long k0, long k1, float *u, long cp, long op, int st) {
  filter_body(g, c, o, k0, k1, u, cp, op, st);
}
static void filter_baseline(const float *g, long c, long o, long k0, long k1, float *u, long cp, long op, int st) {
  filter_body(g, c, o, k0, k1, u, cp, op, st);
}

void wino_filter_transform(int isa, const float *g, long c, long o, long k_begin, long k_end, float *u, long c_padded,
                           long o_padded) {
  // A transform larger than the last-level cache is read back from memory by the products anyway:
  // streaming stores skip reading its lines in first (2.6 times faster on 512x512, measured).
  int st = 36 * c_padded * o_padded * 4 > wino_last_level_cache_bytes() && ((uintptr_t)u & 63) == 0;
  if (isa == WINO_ISA_AVX512) filter_avx512(g, c, o, k_begin, k_end, u, c_padded, o_padded, st);
  else if (isa == WINO_ISA_AVX2) filter_avx2(g, c, o, k_begin, k_end, u, c_padded, o_padded, st);
  else filter_baseline(g, c, o, k_begin, k_end, u, c_padded, o_padded, st);
}

void wino_filter_zero_padding(float *u, long c, long c_padded, long o_padded) {
  for (long e = 0; e < 36; e++)
    for (long panel = 0; panel < o_padded; panel += PANEL) {
      long width = o_padded - panel < PANEL ? o_padded - panel : PANEL;
      float *rows = u + e * c_padded * o_padded + panel * c_padded;
      memset(rows + c * width, 0, (c_padded - c) * width * sizeof(float));
    }
}

void wino_filter_rotate(const float *g, long c, long o, long tap_begin, long tap_end, float *r) {
  // 32 x 32 blocks keep both the rows read and the rows written in cache; 4 x 4 SSE transposes
  // within them (scalar copies took three times as long).
  for (long tap = tap_begin; tap < tap_end; tap++) {
    const float *src = g + (8 - tap) * c * o;
    float *dst = r + tap * o * c;
    for (long k0 = 0; k0 < c; k0 += 32)
      for (long j0 = 0; j0 < o; j0 += 32) {
        long k1 = k0 + 32 < c ? k0 + 32 : c, j1 = j0 + 32 < o ? j0 + 32 : o, k = k0;
        for (; k + 4 <= k1; k += 4) {
          long j = j0;
          for (; j + 4 <= j1; j += 4) {
            __m128 a = _mm_loadu_ps(src + k * o + j), b = _mm_loadu_ps(src + (k + 1) * o + j);
            __m128 e = _mm_loadu_ps(src + (k + 2) * o + j), f = _mm_loadu_ps(src + (k + 3) * o + j);
            _MM_TRANSPOSE4_PS(a, b, e, f);
            _mm_storeu_ps(dst + j * c + k, a);
            _mm_storeu_ps(dst + (j + 1) * c + k, b);
            _mm_storeu_ps(dst + (j + 2) * c + k, e);
            _mm_storeu_ps(dst + (j + 3) * c + k, f);
          }
          for (; j < j1; j++)
            for (long q = k; q < k + 4; q++) dst[j * c + q] = src[q * o + j];
        }
        for (; k < k1; k++)
          for (long j = j0; j < j1; j++) dst[j * c + k] = src[k * o + j];
      }
  }
}
