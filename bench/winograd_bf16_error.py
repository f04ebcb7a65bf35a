#!/usr/bin/env python3
"""Rounding error of a bf16 Winograd convolution, against bf16 and fp32 direct convolution: why
`--precision bf16` on the CPU runs oneDNN's direct bf16 convolutions and not Winograd.

  python3 bench/winograd_bf16_error.py [--channels 64] [--tiles 200] [--seed 0]

A 3x3 valid convolution of C -> C channels over random tiles (ReLU'd normal inputs, He-normal
filters, as in the U-Net) in float64 is the truth. Each variant rounds what it multiplies to bf16
(round to nearest even) and accumulates exactly: direct rounds inputs and filters; Winograd rounds
the transformed input tiles V = B^T d B and the transformed filters U = G g G^T (what a bf16
product kernel would read). Printed: the largest error over the largest output magnitude, and the
error's RMS over the output's RMS. Needs numpy only.
"""

import argparse

import numpy as np

# F(4x4,3x3) (points 0, +-1, +-2, infinity) and F(2x2,3x3) (0, +-1, infinity), Lavin & Gray 2016.
F43 = (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
       np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
       np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], float))
F23 = (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
       np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
       np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float))


def bf16(x):
    """x rounded to the nearest bf16 (ties to even), returned as float64."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def direct(d, g, out, rnd):
    d, g = rnd(d), rnd(g)
    y = np.zeros((d.shape[0], g.shape[0], out, out))
    for i in range(out):
        for j in range(out):
            y[:, :, i, j] = np.einsum("tcab,kcab->tk", d[:, :, i:i + 3, j:j + 3], g)
    return y


def winograd(d, g, matrices, rnd):
    bt, gm, at = matrices
    v = rnd(np.einsum("ia,tcab,jb->tcij", bt, d, bt))
    u = rnd(np.einsum("ia,kcab,jb->kcij", gm, g, gm))
    return np.einsum("ai,tkij,bj->tkab", at, np.einsum("tcij,kcij->tkij", v, u), at)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--tiles", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    c = a.channels
    d = np.maximum(rng.standard_normal((a.tiles, c, 6, 6)), 0)
    g = rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))
    exact = lambda x: x
    for name, size, run in [
        ("fp32 operands, direct", 4, lambda d, g: direct(d, g, 4, lambda x: np.float32(x).astype(float))),
        ("bf16 operands, direct", 4, lambda d, g: direct(d, g, 4, bf16)),
        ("bf16 Winograd F(2x2,3x3)", 2, lambda d, g: winograd(d[:, :, :4, :4], g, F23, bf16)),
        ("bf16 Winograd F(4x4,3x3)", 4, lambda d, g: winograd(d, g, F43, bf16)),
    ]:
        truth = direct(d[:, :, :size + 2, :size + 2], g, size, exact)
        e = run(d, g) - truth
        print(f"{name:26s} max |error| / max |y| {np.abs(e).max() / np.abs(truth).max():.1e}   "
              f"rms error / rms y {np.sqrt((e ** 2).mean() / (truth ** 2).mean()):.1e}")


if __name__ == "__main__":
    main()
