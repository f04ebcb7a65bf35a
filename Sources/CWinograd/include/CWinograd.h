// Winograd F(4x4,3x3) kernels of the CPU backend: the input and output transforms over the
// nChw16c activation layout (one 16-channel block per vector) and the 36 matrix products, with
// the backward-filter's output-gradient transform, products and filter transform too, each
// compiled for AVX-512, for AVX2 with FMA, and for the baseline x86-64, the caller choosing the
// set the processor has (`wino_isa`). Swift's SIMD types compile for the baseline only, which
// gives four SSE operations per 16-lane vector and no fused multiply-add.
#ifndef CWINOGRAD_H
#define CWINOGRAD_H

#include <stddef.h>

/// Instruction sets the kernels are compiled for.
enum { WINO_ISA_BASELINE = 0, WINO_ISA_AVX2 = 1, WINO_ISA_AVX512 = 2 };

/// One 3x3 stride-1 cross-correlation: x (n, c, h, w) -> y (n, o, oh, ow), both nChw16c with the
/// channels padded to 16; output pixel (i, j) reads input rows i - pad_top ..< + 3 and columns
/// j - pad_left ..< + 3, zero outside. With stream_output nonzero, the output transform writes y
/// with streaming stores (meant for a y larger than the last-level cache; ignored unless y is
/// 64-byte aligned).
typedef struct {
  long n, c, h, w, o, oh, ow, pad_top, pad_left;
  int stream_output;
} wino_problem;

/// The best instruction set this processor runs (AVX-512F, else AVX2 with FMA, else baseline).
int wino_isa(void);

/// Bytes of the last-level cache (sysfs's cpu0 index3, else 32 MiB), read once.
long wino_last_level_cache_bytes(void);

/// V_e[t, :] = (Bᵀ d B)_e for the tiles first ..< first + count (4x4 output tiles, row-major per
/// image, images in order): matrix e at v + e * stride floats, row t - first at + (t - first) * ldv,
/// ldv = c rounded up to 16. A stride 16 floats past a multiple of 1024 keeps the 36 rows one
/// tile writes out of each other's cache sets.
void wino_input_transform(int isa, const wino_problem *p, const float *x, long first, long count, float *v, long stride);

/// M_e = V_e U_e for e in e_begin ..< e_end: V_e rows x c_padded (at v + e * v_stride), U_e
/// c_padded x o_padded at u + e * c_padded * o_padded in the panels `wino_filter_transform` writes,
/// M_e rows x o_padded (at m + e * m_stride), all row-major.
void wino_products(int isa, const float *v, long v_stride, const float *u, float *m, long m_stride, long rows, long c_padded,
                   long o_padded, long e_begin, long e_end);

/// y for the tiles first ..< first + count from M_e (matrix e at m + e * stride floats, as
/// `wino_products` wrote them), plus bias (o
/// rounded up to 16 values, padding zero), then max(0, .) when relu is nonzero.
void wino_output_transform(int isa, const wino_problem *p, const float *m, long stride, long first, long count,
                           const float *bias, int relu, float *y);

/// U_e = (G g Gᵀ)_e for input channels k_begin ..< k_end of g, an HWIO filter [3, 3, c, o]
/// row-major, written with streaming stores when larger than the last-level cache; u holds
/// 36 * c_padded * o_padded floats (the padded output channels written zero, the padded input
/// channels left to `wino_filter_zero_padding`):
/// U_e at u + e * c_padded * o_padded, in column panels of 64 output channels (the last one
/// narrower), each c_padded x its width, row-major and contiguous.
void wino_filter_transform(int isa, const float *g, long c, long o, long k_begin, long k_end, float *u, long c_padded,
                           long o_padded);

/// Zeroes what `wino_filter_transform` leaves: the rows of input channels c ..< c_padded of every
/// U_e (a whole buffer zeroed first cost as much as the transform of a 512x512 filter).
void wino_filter_zero_padding(float *u, long c, long c_padded, long o_padded);

/// The filter of the backward-data convolution: r[kh][kw][j][k] = g[2 - kh][2 - kw][k][j] for taps
/// tap_begin ..< tap_end (kh * 3 + kw), g [3, 3, c, o] -> r [3, 3, o, c].
void wino_filter_rotate(const float *g, long c, long o, long tap_begin, long tap_end, float *r);

// MARK: Backward-filter

/// M_e[t, :] = (A dy Aᵀ)_e for the 4x4 tiles first ..< first + count of dy (n, o, oh, ow) in
/// nChw16c, the tiles numbered as `wino_input_transform` numbers them, zero past the output's edge:
/// matrix e at m + e * stride floats, row t - first at + (t - first) * ldm, ldm = o rounded up to 16.
void wino_gradient_transform(int isa, const wino_problem *p, const float *dy, long first, long count, float *m, long stride);

/// dU_e = V_eᵀ M_e (accumulate nonzero: dU_e += V_eᵀ M_e) for e in e_begin ..< e_end: V_e
/// tiles x c_padded (at v + e * v_stride), M_e tiles x o_padded (at m + e * m_stride), dU_e
/// c_padded x o_padded at du + e * c_padded * o_padded, all row-major.
void wino_filter_gradient_products(int isa, const float *v, long v_stride, const float *m, long m_stride, float *du, long tiles,
                                   long c_padded, long o_padded, long e_begin, long e_end, int accumulate);

/// dg = Gᵀ (Σ over parts of dU) G for input channels k_begin ..< k_end, dg an HWIO filter gradient
/// [3, 3, c, o] row-major; part i's 36 matrices dU_e (as `wino_filter_gradient_products` wrote
/// them) at du + i * part_stride floats.
void wino_filter_gradient_transform(int isa, const float *du, long parts, long part_stride, long c, long o, long c_padded,
                                    long o_padded, long k_begin, long k_end, float *dg);

#endif
