// The encoder's gradient (max pooling's backward, the skip's share of the concat's gradient, their
// sum and ReLU's backward) over blocked activations. Lanes are loops of a constant count, which
// clang turns into vector compares and selects.
#include "CBlocked.h"

#define INLINE static inline __attribute__((always_inline))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define AVX2 __attribute__((target("avx2,fma")))

INLINE void row(const blocked_skip_geometry *s, long r, const float *x, const float *dy, const float *g, float *out, int relu,
                const long B) {
  const long i = r % s->cells_h, plane = r / s->cells_h, image = plane / s->blocks, b = plane % s->blocks;
  const long h = s->h, w = s->w, kh = s->kh, kw = s->kw, sh = s->sh, sw = s->sw;
  const float *xp = x + plane * h * w * B;
  float *op = out + plane * h * w * B;
  const float *gp = g + (image * s->g_blocks + s->g_first_block + b) * s->gh * s->gw * B;
  float best[16], grad[16];
  int arg[16];
  for (long j = 0; j < s->cells_w; ++j) {
    // Per lane: the window's first maximum as u * kw + v (-1: the cell has no window), and dy.
    for (long l = 0; l < B; ++l) { arg[l] = -1; grad[l] = 0.0f; }
    if (i < s->oh && j < s->ow) {
      const float *f = xp + (i * sh * w + j * sw) * B;
      for (long l = 0; l < B; ++l) { best[l] = f[l]; arg[l] = 0; }
      for (long u = 0; u < kh; ++u) {
        for (long v = 0; v < kw; ++v) {
          const float *p = xp + ((i * sh + u) * w + j * sw + v) * B;
          const int at = (int)(u * kw + v);
          for (long l = 0; l < B; ++l) {
            const int wins = p[l] > best[l] || (p[l] != p[l] && best[l] == best[l]);
            best[l] = wins ? p[l] : best[l];
            arg[l] = wins ? at : arg[l];
          }
        }
      }
      const float *d = dy + (plane * s->oh * s->ow + i * s->ow + j) * B;
      for (long l = 0; l < B; ++l) grad[l] = 0.0f + d[l];  // as the pooling backward's sum from zero
    }
    for (long u = 0; u < sh && i * sh + u < h; ++u) {
      const long y = i * sh + u, gy = y - s->top;
      for (long v = 0; v < sw && j * sw + v < w; ++v) {
        const long xx = j * sw + v, gx = xx - s->left, at = (y * w + xx) * B;
        const int here = u < kh && v < kw ? (int)(u * kw + v) : -2;
        const int inside = gy >= 0 && gy < s->gh && gx >= 0 && gx < s->gw;
        const float *sk = gp + (inside ? (gy * s->gw + gx) * B : 0);
        const float *xs = xp + at;
        float *o = op + at;
        for (long l = 0; l < B; ++l) {
          const float sum = (arg[l] == here ? grad[l] : 0.0f) + (inside ? sk[l] : 0.0f);
          o[l] = relu && !(xs[l] > 0.0f) ? 0.0f : sum;
        }
      }
    }
  }
}

// One entry point per instruction set and block size (the lane count a constant in each).
#define ENTRY(NAME, ATTR)                                                                                        \
  ATTR static void NAME(const blocked_skip_geometry *s, long first, long count, const float *x, const float *dy, \
                        const float *g, float *out, int relu) {                                                  \
    if (s->block == 16) {                                                                                        \
      for (long r = first; r < first + count; ++r) row(s, r, x, dy, g, out, relu, 16);                           \
    } else {                                                                                                     \
      for (long r = first; r < first + count; ++r) row(s, r, x, dy, g, out, relu, 8);                            \
    }                                                                                                            \
  }
ENTRY(rows_avx512, AVX512)
ENTRY(rows_avx2, AVX2)
ENTRY(rows_baseline, )

int blocked_best_isa(void) {
  static int best = -1;
  if (best < 0) {
    best = __builtin_cpu_supports("avx512f")                                   ? BLOCKED_ISA_AVX512
           : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? BLOCKED_ISA_AVX2
                                                                              : BLOCKED_ISA_BASELINE;
  }
  return best;
}

void blocked_skip_gradient_rows(int isa, const blocked_skip_geometry *s, long first, long count, const float *x,
                                const float *dy, const float *g, float *out, int relu) {
  const int best = blocked_best_isa();
  if (isa < 0 || isa > best) isa = best;
  if (isa == BLOCKED_ISA_AVX512) rows_avx512(s, first, count, x, dy, g, out, relu);
  else if (isa == BLOCKED_ISA_AVX2) rows_avx2(s, first, count, x, dy, g, out, relu);
  else rows_baseline(s, first, count, x, dy, g, out, relu);
}
