// What the Winograd kernel files share: the 16-lane vector, its loads and stores, and the target
// attributes of the per-instruction-set entry points. Not part of the module's interface.
#ifndef WINOGRAD_SIMD_H
#define WINOGRAD_SIMD_H

// Every function taking or returning a vector is inlined into an entry point of one instruction
// set, so no vector crosses a call (the warning is about such calls).
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v16 __attribute__((ext_vector_type(16)));
/// The same vector at any float's address (the blocked layout keeps blocks 64-byte apart, but
/// scratch rows need not be aligned).
typedef float v16u __attribute__((ext_vector_type(16), aligned(4)));

#define INLINE static inline __attribute__((always_inline))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define AVX2 __attribute__((target("avx2,fma")))

INLINE v16 load(const float *p) { return *(const v16u *)p; }
INLINE void store(float *p, v16 v) { *(v16u *)p = v; }

#endif
