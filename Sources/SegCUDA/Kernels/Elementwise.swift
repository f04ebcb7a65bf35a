import SegCore

// MARK: - Elementwise kernels

/// Binary arithmetic with broadcasting (add, sub, mul, div, reluBackward), unary functions (neg,
/// exp, log, sqrt, relu) and scalar ops (addScalar, mulScalar), for f32, f16, bf16 and f64.
///
/// Binary: `<op>_<dtype>(a, b, out, n, dims, strideA, strideB)` writes the n = prod(dims)
/// row-major output elements; each input is read at sum(coordinate * its stride), so a stride of 0
/// repeats it along that axis (broadcasting). Unary: `<op>_<dtype>(x, out, n, c)`, where c is the
/// scalar of addScalar and mulScalar (ignored by the others). `biasActivation_<dtype>(y, bias, n,
/// channels, relu)` is the convolutions' epilogue: y = y + bias (broadcast over the last axis),
/// then ReLU when relu != 0, in place.
///
/// Contiguous operands (one shape, or a [channels] row repeated over [rows, channels] on either
/// side) move 16-byte vectors, one per work item, with a scalar tail; the launch passes one work
/// item per vector (`vectorItems`), though any count gives the same result.
enum ElementwiseKernels {
  /// Binary op kinds and their functors.
  static let binary: [(OpKind, String)] = [
    (.add, "AddOp"), (.sub, "SubOp"), (.mul, "MulOp"), (.div, "DivOp"), (.reluBackward, "ReluBackwardOp"),
  ]
  /// Unary op kinds and their functors.
  static let unary: [(OpKind, String)] = [
    (.neg, "NegOp"), (.exp, "ExpOp"), (.log, "LogOp"), (.sqrt, "SqrtOp"), (.relu, "ReluOp"),
    (.addScalar, "AddScalarOp"), (.mulScalar, "MulScalarOp"),
  ]

  /// addScalar and mulScalar reading their scalar from device memory (`<name>At_<dtype>(x, out, n,
  /// const double* c)`): a captured graph's step scalar, rewritten before each launch.
  static let scalarAt: [(String, String)] = [("addScalarAt", "AddScalarOp"), ("mulScalarAt", "MulScalarOp")]

  static let family = KernelFamily(
    name: "elementwise", body: body,
    instances: KernelNames.floats.flatMap { d in
      binary.map { (kind, op) in
        (KernelNames.name(kind.rawValue, d), "BINARY(\(kind.rawValue), \(op), \(KernelNames.cType(d)), \(d.rawValue))")
      }
        + unary.map { (kind, op) in
          (KernelNames.name(kind.rawValue, d), "UNARY(\(kind.rawValue), \(op), \(KernelNames.cType(d)), \(d.rawValue))")
        }
        + scalarAt.map { (name, op) in
          (KernelNames.name(name, d), "UNARY_AT(\(name), \(op), \(KernelNames.cType(d)), \(d.rawValue))")
        }
        + [(KernelNames.name("biasActivation", d), "BIAS_ACTIVATION(\(KernelNames.cType(d)), \(d.rawValue))")]
    })

  static let body = #"""
    // ---- Elementwise ----
    struct AddOp { template <class C> static DEVICE C apply(C a, C b) { return a + b; } };
    struct SubOp { template <class C> static DEVICE C apply(C a, C b) { return a - b; } };
    struct MulOp { template <class C> static DEVICE C apply(C a, C b) { return a * b; } };
    struct DivOp { template <class C> static DEVICE C apply(C a, C b) { return a / b; } };
    // (dy, y): dy where y > 0, else 0.
    struct ReluBackwardOp { template <class C> static DEVICE C apply(C dy, C y) { return y > C(0) ? dy : C(0); } };

    template <class T, class Op> DEVICE T binaryAt(T a, T b) {
      return Elem<T>::store(Op::apply(Elem<T>::load(a), Elem<T>::load(b)));
    }

    // Contiguous operands of one shape: 16 bytes per access, then the last n % N elements one each.
    template <class T, class Op>
    DEVICE void binarySame(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, i64 n) {
      const int N = Pack<T>::N;
      const i64 vectors = n / N;
      #pragma unroll 1
      for (i64 j = gridStart(); j < vectors; j += gridStep()) {
        T x[N], y[N], z[N];
        loadVec<T, N>(a + j * N, x);
        loadVec<T, N>(b + j * N, y);
    #pragma unroll
        for (int k = 0; k < N; ++k) z[k] = binaryAt<T, Op>(x[k], y[k]);
        storeVec<T, N>(out + j * N, z);
      }
      #pragma unroll 1
      for (i64 i = vectors * N + gridStart(); i < n; i += gridStep()) out[i] = binaryAt<T, Op>(a[i], b[i]);
    }

    // [rows, channels] with one operand a [channels] vector repeated on every row (a bias), on
    // either side (FULL_FIRST: a is the full operand); channels a multiple of N, so that each vector
    // of N lies in one row. The row index is a 32-bit division per 16 bytes.
    template <class T, class Op, bool FULL_FIRST>
    DEVICE void binaryRows(const T* __restrict__ full, const T* __restrict__ row, T* __restrict__ out, i64 n, i64 channels) {
      const int N = Pack<T>::N;
      const i64 vectors = n / N;
      const u32 cv = divisor32(channels / N);
      #pragma unroll 1
      for (i64 j = gridStart(); j < vectors; j += gridStep()) {
        u64 c;
        if (j < 4294967295LL) c = (u32)j % cv;
        else udiv((u64)j, (u64)(channels / N), c);
        T x[N], y[N], z[N];
        loadVec<T, N>(full + j * N, x);
        loadVec<T, N>(row + c * N, y);
    #pragma unroll
        for (int k = 0; k < N; ++k) z[k] = FULL_FIRST ? binaryAt<T, Op>(x[k], y[k]) : binaryAt<T, Op>(y[k], x[k]);
        storeVec<T, N>(out + j * N, z);
      }
    }

    // Any broadcast: each input read through its strides (0 along repeated axes).
    template <class T, class Op>
    DEVICE void binaryStrided(const T* a, const T* b, T* out, i64 n, const Dims& dims, const Vec& sa, const Vec& sb) {
      #pragma unroll 1
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        i64 ia, ib;
        offsetsOf(i, dims, sa, sb, ia, ib);
        out[i] = binaryAt<T, Op>(a[ia], b[ib]);
      }
    }

    template <class T, class Op>
    DEVICE void binary(const T* a, const T* b, T* out, i64 n, const Dims& dims, const Vec& sa, const Vec& sb) {
      const int N = Pack<T>::N;
      if (aligned16(a) && aligned16(b) && aligned16(out)) {
        if (dims.rank == 1 && sa.v[0] == 1 && sb.v[0] == 1) return binarySame<T, Op>(a, b, out, n);
        if (dims.rank == 2 && dims.v[1] % N == 0 && sa.v[1] == 1 && sb.v[1] == 1) {
          const i64 c = dims.v[1];
          if (sa.v[0] == c && sb.v[0] == 0) return binaryRows<T, Op, true>(a, b, out, n, c);
          if (sa.v[0] == 0 && sb.v[0] == c) return binaryRows<T, Op, false>(b, a, out, n, c);
        }
      }
      binaryStrided<T, Op>(a, b, out, n, dims, sa, sb);
    }

    #define BINARY(NAME, OP, T, SUFFIX)                                                        \
      KERNEL NAME##_##SUFFIX(const T* a, const T* b, T* out, i64 n, Dims dims, Vec sa, Vec sb) { \
        binary<T, OP>(a, b, out, n, dims, sa, sb);                                             \
      }

    struct NegOp { template <class C> static DEVICE C apply(C x, C) { return -x; } };
    struct ExpOp { template <class C> static DEVICE C apply(C x, C) { return cexp(x); } };
    struct LogOp { template <class C> static DEVICE C apply(C x, C) { return clog(x); } };
    struct SqrtOp { template <class C> static DEVICE C apply(C x, C) { return csqrt(x); } };
    // As Swift's max(x, 0): NaN and -0 pass through.
    struct ReluOp { template <class C> static DEVICE C apply(C x, C) { return C(0) > x ? C(0) : x; } };
    struct AddScalarOp { template <class C> static DEVICE C apply(C x, C c) { return x + c; } };
    struct MulScalarOp { template <class C> static DEVICE C apply(C x, C c) { return x * c; } };

    template <class T, class Op>
    DEVICE void unary(const T* __restrict__ x, T* __restrict__ out, i64 n, double c) {
      typedef typename Elem<T>::C C;
      const int N = Pack<T>::N;
      const C cc = (C)c;
      i64 done = 0;
      if (aligned16(x) && aligned16(out)) {
        const i64 vectors = n / N;
        #pragma unroll 1
        for (i64 j = gridStart(); j < vectors; j += gridStep()) {
          T v[N];
          loadVec<T, N>(x + j * N, v);
    #pragma unroll
          for (int k = 0; k < N; ++k) v[k] = Elem<T>::store(Op::apply(Elem<T>::load(v[k]), cc));
          storeVec<T, N>(out + j * N, v);
        }
        done = vectors * N;
      }
      #pragma unroll 1
      for (i64 i = done + gridStart(); i < n; i += gridStep()) out[i] = Elem<T>::store(Op::apply(Elem<T>::load(x[i]), cc));
    }

    #define UNARY(NAME, OP, T, SUFFIX) \
      KERNEL NAME##_##SUFFIX(const T* x, T* out, i64 n, double c) { unary<T, OP>(x, out, n, c); }
    #define UNARY_AT(NAME, OP, T, SUFFIX) \
      KERNEL NAME##_##SUFFIX(const T* x, T* out, i64 n, const double* c) { unary<T, OP>(x, out, n, *c); }

    // A convolution's epilogue, in place over y [rows, channels]: y + bias, then ReLU when `relu`,
    // rounded once to T (one pass over the output instead of two). 16 bytes per access when the
    // channels are a multiple of N.
    template <class T>
    DEVICE C_OF(T) biasValue(T y, T b, int relu) {
      C_OF(T) v = Elem<T>::load(y) + Elem<T>::load(b);
      return relu ? ReluOp::apply(v, C_OF(T)(0)) : v;
    }

    template <class T>
    DEVICE void biasActivation(T* y, const T* __restrict__ bias, i64 n, i64 channels, int relu) {
      const int N = Pack<T>::N;
      i64 done = 0;
      if (aligned16(y) && aligned16(bias) && channels % N == 0) {
        const i64 vectors = n / N;
        const u32 cv = divisor32(channels / N);
        #pragma unroll 1
        for (i64 j = gridStart(); j < vectors; j += gridStep()) {
          u64 c;
          if (j < 4294967295LL) c = (u32)j % cv;
          else udiv((u64)j, (u64)(channels / N), c);
          T v[N], b[N];
          loadVec<T, N>(y + j * N, v);
          loadVec<T, N>(bias + c * N, b);
    #pragma unroll
          for (int k = 0; k < N; ++k) v[k] = Elem<T>::store(biasValue(v[k], b[k], relu));
          storeVec<T, N>(y + j * N, v);
        }
        done = vectors * N;
      }
      const u32 c32 = divisor32(channels);
      #pragma unroll 1
      for (i64 i = done + gridStart(); i < n; i += gridStep()) {
        u64 ch;
        if (i < 4294967295LL) ch = (u32)i % c32;
        else udiv((u64)i, (u64)channels, ch);
        y[i] = Elem<T>::store(biasValue(y[i], bias[ch], relu));
      }
    }

    #define BIAS_ACTIVATION(T, SUFFIX) \
      KERNEL biasActivation_##SUFFIX(T* y, const T* bias, i64 n, i64 channels, int relu) { biasActivation<T>(y, bias, n, channels, relu); }
    """#
}
