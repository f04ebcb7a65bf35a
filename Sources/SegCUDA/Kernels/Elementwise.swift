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

  static let family = KernelFamily(
    name: "elementwise", body: body,
    instances: KernelNames.floats.flatMap { d in
      binary.map { (kind, op) in
        (KernelNames.name(kind.rawValue, d), "BINARY(\(kind.rawValue), \(op), \(KernelNames.cType(d)), \(d.rawValue))")
      }
        + unary.map { (kind, op) in
          (KernelNames.name(kind.rawValue, d), "UNARY(\(kind.rawValue), \(op), \(KernelNames.cType(d)), \(d.rawValue))")
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

    template <class T, class Op>
    DEVICE void binary(const T* a, const T* b, T* out, i64 n, const Dims& dims, const Vec& sa, const Vec& sb) {
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        i64 ia, ib;
        offsetsOf(i, dims, sa, sb, ia, ib);
        out[i] = Elem<T>::store(Op::apply(Elem<T>::load(a[ia]), Elem<T>::load(b[ib])));
      }
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
    DEVICE void unary(const T* x, T* out, i64 n, double c) {
      typedef typename Elem<T>::C C;
      const C cc = (C)c;
      for (i64 i = gridStart(); i < n; i += gridStep()) out[i] = Elem<T>::store(Op::apply(Elem<T>::load(x[i]), cc));
    }

    #define UNARY(NAME, OP, T, SUFFIX) \
      KERNEL NAME##_##SUFFIX(const T* x, T* out, i64 n, double c) { unary<T, OP>(x, out, n, c); }

    // A convolution's epilogue, in place over y [rows, channels]: y + bias, then ReLU when `relu`,
    // rounded once to T (one pass over the output instead of two).
    template <class T>
    DEVICE void biasActivation(T* y, const T* bias, i64 n, i64 channels, int relu) {
      typedef typename Elem<T>::C C;
      const u32 c32 = divisor32(channels);
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        const i64 ch = i < 4294967295LL ? (i64)((u32)i % c32) : i % channels;
        C v = Elem<T>::load(y[i]) + Elem<T>::load(bias[ch]);
        if (relu) v = ReluOp::apply(v, C(0));
        y[i] = Elem<T>::store(v);
      }
    }

    #define BIAS_ACTIVATION(T, SUFFIX) \
      KERNEL biasActivation_##SUFFIX(T* y, const T* bias, i64 n, i64 channels, int relu) { biasActivation<T>(y, bias, n, channels, relu); }
    """#
}
