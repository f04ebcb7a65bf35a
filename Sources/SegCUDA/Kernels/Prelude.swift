// MARK: - Prelude

/// CUDA code shared by every kernel family: integer types, f16/bf16 conversions, element traits and
/// index helpers. No CUDA header is included (NVRTC would need the toolkit's include folder at run
/// time): f16 and bf16 travel as 16-bit patterns and are converted in integer arithmetic, bit for
/// bit as Swift's Float16(Float) and SegCore's BFloat16 do. Kernels use grid-stride loops with no
/// shared memory or warp operations, so any launch shape gives the same result.
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

    // An extent as a 32-bit divisor: one past any 32-bit index when it does not fit, which divides
    // such an index the same way (quotient 0, remainder the index).
    DEVICE u32 divisor32(i64 d) { return d < 4294967295LL ? (u32)d : 4294967295u; }

    // The offset of row-major element i of `dims` in memory laid out with `strides`. A 64-bit
    // division costs several times a 32-bit one on a GPU and an elementwise kernel is otherwise
    // only loads and stores, so one axis needs none and indices below 2^32 use 32 bits.
    DEVICE i64 offsetOf(i64 i, const Dims& dims, const Vec& strides) {
      if (dims.rank == 1) return i * strides.v[0];
      i64 off = 0;
      if (i < 4294967295LL) {
        u32 r = (u32)i;
        for (int k = (int)dims.rank - 1; k >= 0; --k) {
          const u32 d = divisor32(dims.v[k]);
          off += (i64)(r % d) * strides.v[k];
          r /= d;
        }
        return off;
      }
      for (int k = (int)dims.rank - 1; k >= 0; --k) {
        i64 c = i % dims.v[k];
        i /= dims.v[k];
        off += c * strides.v[k];
      }
      return off;
    }

    // The offsets of row-major element i in two layouts of the same index space (as offsetOf).
    DEVICE void offsetsOf(i64 i, const Dims& dims, const Vec& sa, const Vec& sb, i64& ia, i64& ib) {
      ia = 0;
      ib = 0;
      if (dims.rank == 1) {
        ia = i * sa.v[0];
        ib = i * sb.v[0];
        return;
      }
      if (i < 4294967295LL) {
        u32 r = (u32)i;
        for (int k = (int)dims.rank - 1; k >= 0; --k) {
          const u32 d = divisor32(dims.v[k]);
          const i64 c = (i64)(r % d);
          r /= d;
          ia += c * sa.v[k];
          ib += c * sb.v[k];
        }
        return;
      }
      for (int k = (int)dims.rank - 1; k >= 0; --k) {
        const i64 c = i % dims.v[k];
        i /= dims.v[k];
        ia += c * sa.v[k];
        ib += c * sb.v[k];
      }
    }

    // ---- f16 and bf16 ----
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

    DEVICE float bf16ToF32(u16 b) { return __uint_as_float((u32)b << 16); }

    // As SegCore's BFloat16.fromFloat: round to nearest even, NaN stays NaN.
    DEVICE u16 f32ToBF16(float f) {
      u32 bits = __float_as_uint(f);
      if (f != f) return (u16)((bits >> 16) | 0x40);
      return (u16)((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
    }

    // ---- Element traits: the compute type C of each storage type ----
    template <class T> struct Elem;
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
