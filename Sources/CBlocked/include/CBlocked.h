// Vector kernels of the CPU backend over oneDNN's channel-blocked activations (nChw8c, nChw16c)
// that oneDNN has no primitive for, each compiled for AVX-512, AVX2 and the baseline x86-64 and
// chosen by what the processor has. Swift's SIMD types compile for the baseline only, and their
// masked selects to scalar code.
#ifndef CBLOCKED_H
#define CBLOCKED_H

/// The skip gradient's operands in one blocked format of `block` (8 or 16) floats: x and the
/// output (n, c, h, w), dy (n, c, oh, ow), g (n, g_blocks * block, gh, gw) whose blocks from
/// g_first_block on are the skip's; windows kh x kw at strides sh >= kh, sw >= kw; g's window
/// starts at (top, left) of x; cells_h x cells_w stride cells cover x.
typedef struct {
  long h, w, oh, ow, gh, gw, kh, kw, sh, sw, top, left;
  long block, blocks, g_blocks, g_first_block, cells_h, cells_w;
} blocked_skip_geometry;

/// Instruction sets the kernels are compiled for: AVX-512F, AVX2 with FMA, the baseline x86-64.
enum { BLOCKED_ISA_BASELINE = 0, BLOCKED_ISA_AVX2 = 1, BLOCKED_ISA_AVX512 = 2 };

/// The best of them this processor runs.
int blocked_best_isa(void);

/// Writes rows first ..< first + count of the skip gradient (row: image, channel block, row of
/// cells): per cell, each lane's first window maximum (row-major, a NaN winning) takes dy, every
/// pixel adds g's value where g's window covers it, and with relu nonzero keeps the sum only where
/// x > 0. f32 throughout, each sum rounded once. `isa`: the instruction set (at most the best; a
/// negative value or one above the best runs the best).
void blocked_skip_gradient_rows(
  int isa, const blocked_skip_geometry *s, long first, long count, const float *x, const float *dy, const float *g,
  float *out, int relu);

#endif
