// MARK: - Prelude

/// CUDA code shared by every kernel family: integer types, f16/bf16 conversions, element traits,
/// 16-byte vectors and index helpers. No CUDA header is included (NVRTC would need the toolkit's
/// include folder at run time): f16 and bf16 travel as 16-bit patterns, converted on the GPU by the
/// hardware's `cvt` (inline PTX) and, where `__CUDA_ARCH__` is not defined (the host emulator), in
/// integer arithmetic, bit for bit as Swift's Float16(Float) and SegCore's BFloat16 do (NaN payloads
/// aside: the hardware gives its canonical NaN). Kernels use grid-stride loops, so any launch shape
/// covers the work; only the block reductions (softmax of long rows) use shared memory and warp
/// shuffles, and their order of addition follows the block size.
enum KernelPrelude {
  static let source = #"""
    // ---- Prelude ----
    typedef long long i64;
    typedef unsigned long long u64;
    typedef unsigned int u32;
    typedef unsigned short u16;
    typedef unsigned char u8;

    #define MAX_RANK 8
    #define KERNEL extern "C" __global__ void
    #define DEVICE __device__ __forceinline__

    // f16 and bf16 elements: their IEEE bit patterns.
    struct half_t { u16 bits; };
    struct bf16_t { u16 bits; };

    // A row-major index space of up to MAX_RANK axes, and a vector with one entry per axis.
    struct Dims { i64 rank; i64 v[MAX_RANK]; };
    struct Vec { i64 v[MAX_RANK]; };

    // The first index and the step of a grid-stride loop.
    DEVICE i64 gridStart() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
    DEVICE i64 gridStep() { return (i64)gridDim.x * blockDim.x; }

    // x / d, and x % d in rem, for x or d from 2^32: shift and subtract, so that no kernel carries
    // a 64-bit division (a long software routine on a GPU). Out of line: no tensor of the model
    // comes near 4G elements, so its code stays out of the hot loops.
    struct QuotientRemainder { u64 q, r; };
    static __device__ __noinline__ QuotientRemainder udivSlow(u64 x, u64 d) {
      u64 q = 0, r = 0;
    #pragma unroll 1
      for (int b = 63; b >= 0; --b) {
        r = (r << 1) | ((x >> b) & 1u);
        if (r >= d) { r -= d; q |= 1ull << b; }
      }
      QuotientRemainder qr = {q, r};
      return qr;
    }

    // x / d, and x % d in rem: a 32-bit hardware division when both fit (every index of a tensor
    // below 4G elements).
    DEVICE u64 udiv(u64 x, u64 d, u64& rem) {
      if ((x | d) < 4294967296ull) {
        const u32 q = (u32)x / (u32)d;
        rem = (u32)x - q * (u32)d;
        return q;
      }
      const QuotientRemainder qr = udivSlow(x, d);
      rem = qr.r;
      return qr.q;
    }

    // x / d for non-negative x and positive d, as udiv.
    DEVICE i64 quotient(i64 x, i64 d) {
      u64 r;
      return (i64)udiv((u64)x, (u64)d, r);
    }

    // An extent as a 32-bit divisor: one past any 32-bit index when it does not fit, which divides
    // such an index the same way (quotient 0, remainder the index).
    DEVICE u32 divisor32(i64 d) { return d < 4294967295LL ? (u32)d : 4294967295u; }

    // The offsets of row-major element i of `dims` in two layouts `sa` and `sb` (pass the same
    // one twice for one). An elementwise kernel is otherwise only loads and stores, so one axis
    // needs no division and indices below 2^32 use 32-bit ones. The axis loops are unrolled over
    // MAX_RANK so that the kernel parameters are read at fixed offsets: indexed at run time they
    // would first be copied to local memory, hundreds of bytes per thread.
    DEVICE void offsetsOf(i64 i, const Dims& dims, const Vec& sa, const Vec& sb, i64& ia, i64& ib) {
      ia = 0;
      ib = 0;
      const int rank = (int)dims.rank;
      if (rank == 1) {
        ia = i * sa.v[0];
        ib = i * sb.v[0];
        return;
      }
      if (i < 4294967295LL) {
        u32 r = (u32)i;
    #pragma unroll
        for (int k = MAX_RANK - 1; k >= 0; --k) {
          if (k >= rank) continue;
          const u32 d = divisor32(dims.v[k]);
          const u32 q = r / d;
          const i64 c = (i64)(r - q * d);
          r = q;
          ia += c * sa.v[k];
          ib += c * sb.v[k];
        }
        return;
      }
      u64 r = (u64)i;
    #pragma unroll
      for (int k = MAX_RANK - 1; k >= 0; --k) {
        if (k >= rank) continue;
        u64 c;
        r = udiv(r, (u64)dims.v[k], c);
        ia += (i64)c * sa.v[k];
        ib += (i64)c * sb.v[k];
      }
    }

    // The offset of row-major element i of `dims` in memory laid out with `strides`.
    DEVICE i64 offsetOf(i64 i, const Dims& dims, const Vec& strides) {
      i64 a, b;
      offsetsOf(i, dims, strides, strides, a, b);
      return a;
    }

    // ---- 16-byte vectors ----
    // One 128-bit access (ld.global.v4 / st.global.v4) moves 8 halves or 4 floats; per-element
    // accesses leave most of each memory transaction's bandwidth unused.
    struct __align__(16) V16 { u32 x, y, z, w; };

    // N = 16 / sizeof(T) elements of T in one 16-byte vector.
    template <class T> struct Pack {
      enum { N = 16 / sizeof(T) };
      union { V16 v; T e[N]; };
    };

    DEVICE bool aligned16(const void* p) { return ((u64)p & 15) == 0; }

    // K elements (a multiple of 16 bytes) from or to p, 16 bytes at a time; p 16-byte aligned.
    template <class T, int K> DEVICE void loadVec(const T* p, T (&e)[K]) {
      const int N = Pack<T>::N;
    #pragma unroll
      for (int q = 0; q < K / N; ++q) {
        Pack<T> pk;
        pk.v = reinterpret_cast<const V16*>(p)[q];
    #pragma unroll
        for (int k = 0; k < N; ++k) e[q * N + k] = pk.e[k];
      }
    }
    template <class T, int K> DEVICE void storeVec(T* p, const T (&e)[K]) {
      const int N = Pack<T>::N;
    #pragma unroll
      for (int q = 0; q < K / N; ++q) {
        Pack<T> pk;
    #pragma unroll
        for (int k = 0; k < N; ++k) pk.e[k] = e[q * N + k];
        reinterpret_cast<V16*>(p)[q] = pk.v;
      }
    }

    // ---- f16 and bf16 ----
    // On the GPU one cvt instruction each way (round to nearest even, subnormals kept); the host
    // emulator has no PTX, so it converts in integer arithmetic with the same results.
    #ifdef __CUDA_ARCH__
    DEVICE float f16ToF32(u16 h) {
      float f;
      asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
      return f;
    }
    DEVICE u16 f32ToF16(float f) {
      u16 h;
      asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
      return h;
    }
    #else
    DEVICE float f16ToF32(u16 h) {
      u32 sign = (u32)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m << 13));
      if (e == 0) {
        if (m == 0) return __uint_as_float(sign);
        e = 113;  // subnormal: normalise the mantissa
        while (!(m & 0x400)) { m <<= 1; --e; }
        return __uint_as_float(sign | (e << 23) | ((m & 0x3ff) << 13));
      }
      return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
    }

    // Round to nearest even; overflow gives infinity, NaN stays a quiet NaN.
    DEVICE u16 f32ToF16(float f) {
      u32 x = __float_as_uint(f), sign = (x >> 16) & 0x8000, a = x & 0x7fffffffu;
      if (a > 0x7f800000u) return (u16)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
      if (a >= 0x477ff000u) return (u16)(sign | 0x7c00);
      if (a >= 0x38800000u) {
        u32 r = a - 0x38000000u;
        return (u16)(sign | ((r + 0xfffu + ((r >> 13) & 1)) >> 13));
      }
      if (a < 0x33000000u) return (u16)sign;
      u32 e = a >> 23, mant = (a & 0x7fffff) | 0x800000, shift = 126 - e;
      u32 q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
      if (rem > half || (rem == half && (q & 1))) ++q;
      return (u16)(sign | q);
    }
    #endif

    DEVICE float bf16ToF32(u16 b) { return __uint_as_float((u32)b << 16); }

    // As SegCore's BFloat16.fromFloat: round to nearest even, NaN stays NaN (cvt.rn.bf16.f32 from
    // sm_80 on).
    #if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    DEVICE u16 f32ToBF16(float f) {
      u16 h;
      asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
      return h;
    }
    #else
    DEVICE u16 f32ToBF16(float f) {
      u32 bits = __float_as_uint(f);
      if (f != f) return (u16)((bits >> 16) | 0x40);
      return (u16)((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
    }
    #endif

    // ---- Element traits: the compute type C of each storage type ----
    template <class T> struct Elem;
    // The compute type of storage type T.
    #define C_OF(T) typename Elem<T>::C
    template <> struct Elem<float> {
      typedef float C;
      static DEVICE float load(float x) { return x; }
      static DEVICE float store(float c) { return c; }
    };
    template <> struct Elem<double> {
      typedef double C;
      static DEVICE double load(double x) { return x; }
      static DEVICE double store(double c) { return c; }
    };
    template <> struct Elem<half_t> {
      typedef float C;
      static DEVICE float load(half_t x) { return f16ToF32(x.bits); }
      static DEVICE half_t store(float c) { half_t h; h.bits = f32ToF16(c); return h; }
    };
    template <> struct Elem<bf16_t> {
      typedef float C;
      static DEVICE float load(bf16_t x) { return bf16ToF32(x.bits); }
      static DEVICE bf16_t store(float c) { bf16_t h; h.bits = f32ToBF16(c); return h; }
    };

    // f32 arithmetic rounded op by op, never contracted into fused multiply-adds: fused kernels
    // use these to give the values of the same formula written with one op per kernel.
    DEVICE float addRn(float a, float b) { return __fadd_rn(a, b); }
    DEVICE float subRn(float a, float b) { return __fsub_rn(a, b); }
    DEVICE float mulRn(float a, float b) { return __fmul_rn(a, b); }
    DEVICE float divRn(float a, float b) { return __fdiv_rn(a, b); }

    DEVICE float cexp(float x) { return expf(x); }
    DEVICE double cexp(double x) { return exp(x); }
    DEVICE float clog(float x) { return logf(x); }
    DEVICE double clog(double x) { return log(x); }
    DEVICE float csqrt(float x) { return sqrtf(x); }
    DEVICE double csqrt(double x) { return sqrt(x); }

    // ---- Conversions between all dtypes, as SegCore's DType.round ----
    DEVICE double toF64(float x) { return (double)x; }
    DEVICE double toF64(double x) { return x; }
    DEVICE double toF64(half_t x) { return (double)f16ToF32(x.bits); }
    DEVICE double toF64(bf16_t x) { return (double)bf16ToF32(x.bits); }
    DEVICE double toF64(int x) { return (double)x; }
    DEVICE double toF64(u8 x) { return (double)x; }
    DEVICE float toF32(float x) { return x; }
    DEVICE float toF32(double x) { return (float)x; }
    DEVICE float toF32(half_t x) { return f16ToF32(x.bits); }
    DEVICE float toF32(bf16_t x) { return bf16ToF32(x.bits); }
    DEVICE float toF32(int x) { return (float)x; }
    DEVICE float toF32(u8 x) { return (float)x; }

    // Truncation toward zero; 0 for NaN, infinities and magnitudes from 9.2e18 (as DType.round).
    DEVICE i64 truncI64(double x) { return (x > -9.2e18 && x < 9.2e18) ? (i64)x : 0; }

    // To<D>::from(s): s converted to D. Floats go through f32 (one rounding from f64, as the
    // reference), f64 is exact, integers truncate toward zero and wrap around.
    template <class D> struct To;
    template <> struct To<float> { template <class S> static DEVICE float from(S s) { return toF32(s); } };
    template <> struct To<double> { template <class S> static DEVICE double from(S s) { return toF64(s); } };
    template <> struct To<half_t> {
      template <class S> static DEVICE half_t from(S s) { return Elem<half_t>::store(toF32(s)); }
    };
    template <> struct To<bf16_t> {
      template <class S> static DEVICE bf16_t from(S s) { return Elem<bf16_t>::store(toF32(s)); }
    };
    template <> struct To<int> { template <class S> static DEVICE int from(S s) { return (int)(u32)(u64)truncI64(toF64(s)); } };
    template <> struct To<u8> { template <class S> static DEVICE u8 from(S s) { return (u8)(u64)truncI64(toF64(s)); } };
    """#
}
