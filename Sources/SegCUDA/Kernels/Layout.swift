import SegCore

// MARK: - Layout kernels

/// Data movement by element size (any dtype): strided copies (slice, broadcastTo, concat, reshape),
/// zero and reflect padding; and padBackward, the adjoint of reflect padding, for floating dtypes.
///
/// `copy_b<bytes>(src, dst, n, dims, srcStrides, srcBase, dstStrides, dstBase)`: for each of the n
/// row-major elements of `dims`, dst[dstBase + sum(c * dstStrides)] = src[srcBase + sum(c * srcStrides)].
///
/// `pad_b<bytes>(src, dst, n, outDims, before, inDims, inStrides, reflect)`: output coordinate j
/// reads input coordinate j - before along each axis; outside the input it is 0, or with reflect
/// the input mirrored about its edge (NumPy's 'reflect'). Both move 16-byte vectors when the last
/// axis is contiguous (and, for pad, not padded) and a multiple of 16 bytes.
///
/// `cropConcat_b<bytes>(a, skip, out, n, shape)`, the U-Net's skip connection (`cropConcat`): out
/// [batch, h, w, ca + cs] takes channels 0..<ca from a [batch, h, w, ca], the rest from skip
/// [batch, hs, ws, cs] at rows oy..<oy+h and columns ox..<ox+w; n = batch * h * w * (ca + cs);
/// shape holds (batch, h, w, ca, cs, hs, ws, oy, ox).
///
/// `cropConcatBackward_b<bytes>(g, ga, gs, n, shape)`, its gradient (`cropConcatBackward`) in one
/// pass: ga [batch, h, w, ca] gets g's first ca channels, gs [batch, hs, ws, cs] the rest inside
/// the window and zeros outside; n = batch * (h * w * ca + hs * ws * cs), the elements of both.
/// Both move 16-byte vectors when ca and cs are whole vectors, and index in 32 bits (the backend
/// launches them for tensors below 2^32 elements).
///
/// `padBackward_<dtype>(g, out, n, interior, before, after, gStrides)`: out (the interior) gets, per
/// element, the sum of every element of the padded gradient g that reflect padding copied from it,
/// gathered (no atomics) in the padded tensor's row-major order, as the reference adds them.
enum LayoutKernels {
  static let family = KernelFamily(
    name: "layout", body: body,
    instances: KernelNames.byteSizes.flatMap { b -> [(String, String)] in
      [
        ("copy_b\(b)", "COPY(\(b), \(KernelNames.wordType(b)))"), ("pad_b\(b)", ""), ("cropConcat_b\(b)", ""),
        ("cropConcatBackward_b\(b)", ""),
      ]
    }
      + KernelNames.floats.map { d in
        (KernelNames.name(OpKind.padBackward.rawValue, d), "PAD_BACKWARD(\(KernelNames.cType(d)), \(d.rawValue))")
      })

  static let body = #"""
    // ---- Strided copy ----
    template <class E>
    DEVICE void stridedCopy(
        const E* __restrict__ src, E* __restrict__ dst, i64 n, const Dims& dims, const Vec& ss, i64 sbase,
        const Vec& ds, i64 dbase) {
    #pragma unroll 1
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        i64 so, dO;
        offsetsOf(i, dims, ss, ds, so, dO);
        dst[dbase + dO] = src[sbase + so];
      }
    }

    // Whether the copy moves whole 16-byte vectors: the last axis contiguous on both sides, and
    // every row start and both buffers 16-byte aligned (a concat or slice along channels of a
    // multiple of 16 bytes, a reshape, a row broadcast).
    template <class E>
    DEVICE bool copiesVectors(const E* src, E* dst, const Dims& dims, const Vec& ss, i64 sbase, const Vec& ds, i64 dbase) {
      const i64 N = 16 / sizeof(E);
      const int last = (int)dims.rank - 1;
      if (N == 1 || last < 0 || !aligned16(src) || !aligned16(dst)) return false;
      if (sbase % N || dbase % N) return false;
    #pragma unroll
      for (int k = 0; k < MAX_RANK; ++k) {
        if (k == last && (ss.v[k] != 1 || ds.v[k] != 1 || dims.v[k] % N)) return false;
        if (k < last && (ss.v[k] % N || ds.v[k] % N)) return false;
      }
      return true;
    }

    // The copy in 16-byte units: the last axis and every stride and base divided by N.
    template <class E>
    DEVICE void vectorCopy(const E* src, E* dst, Dims dims, Vec ss, i64 sbase, Vec ds, i64 dbase) {
      const i64 N = 16 / sizeof(E);
    #pragma unroll
      for (int k = 0; k < MAX_RANK; ++k) {
        if (k == dims.rank - 1) dims.v[k] /= N;
        else if (k < dims.rank - 1) { ss.v[k] /= N; ds.v[k] /= N; }
      }
      i64 n = 1;
    #pragma unroll
      for (int k = 0; k < MAX_RANK; ++k) {
        if (k < dims.rank) n *= dims.v[k];
      }
      stridedCopy<V16>(
          reinterpret_cast<const V16*>(src), reinterpret_cast<V16*>(dst), n, dims, ss, sbase / N, ds, dbase / N);
    }

    // ---- Pad ----
    // The input offset of output element i, or -1 where zero padding puts a zero.
    DEVICE i64 padSource(i64 i, const Dims& out, const Vec& before, const Vec& in, const Vec& inStrides, i64 reflect) {
      const int rank = (int)out.rank;
      const bool small = i < 4294967295LL;
      u64 r = (u64)i;
      i64 off = 0;
      bool zero = false;
    #pragma unroll
      for (int k = MAX_RANK - 1; k >= 0; --k) {
        if (k >= rank) continue;
        u64 j;
        if (small) {
          const u32 d = divisor32(out.v[k]), q = (u32)r / d;
          j = (u32)r - q * d;
          r = q;
        } else {
          r = udiv(r, (u64)out.v[k], j);
        }
        i64 p = (i64)j - before.v[k];
        const i64 m = in.v[k];
        if (p < 0 || p >= m) {
          if (reflect) p = p < 0 ? -p : 2 * (m - 1) - p;
          else zero = true;
        }
        off += p * inStrides.v[k];
      }
      return zero ? -1 : off;
    }

    template <class E>
    DEVICE void padElements(
        const E* __restrict__ src, E* __restrict__ dst, i64 n, const Dims& out, const Vec& before, const Vec& in,
        const Vec& inStrides, i64 reflect) {
    #pragma unroll 1
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        const i64 off = padSource(i, out, before, in, inStrides, reflect);
        dst[i] = off < 0 ? E() : src[off];
      }
    }

    // Whether the pad moves whole 16-byte vectors: the last axis not padded, a multiple of 16
    // bytes and contiguous (channels of NHWC padded along H and W), both buffers aligned.
    template <class E>
    DEVICE bool padsVectors(const E* src, E* dst, const Dims& out, const Vec& before, const Vec& in, const Vec& inStrides) {
      const i64 N = 16 / sizeof(E);
      const int last = (int)out.rank - 1;
      if (last < 0 || !aligned16(src) || !aligned16(dst)) return false;
    #pragma unroll
      for (int k = 0; k < MAX_RANK; ++k) {
        if (k == last && (before.v[k] != 0 || in.v[k] != out.v[k] || out.v[k] % N || inStrides.v[k] != 1)) return false;
        if (k < last && inStrides.v[k] % N) return false;
      }
      return true;
    }

    // The pad in 16-byte units: the last axis and the other input strides divided by N.
    template <class E>
    DEVICE void vectorPad(const E* src, E* dst, i64 n, Dims out, const Vec& before, Vec in, Vec inStrides, i64 reflect) {
      const i64 N = 16 / sizeof(E);
    #pragma unroll
      for (int k = 0; k < MAX_RANK; ++k) {
        if (k == out.rank - 1) { out.v[k] /= N; in.v[k] /= N; }
        else if (k < out.rank - 1) inStrides.v[k] /= N;
      }
      padElements<V16>(
          reinterpret_cast<const V16*>(src), reinterpret_cast<V16*>(dst), n / N, out, before, in, inStrides, reflect);
    }

    // ---- Crop and concat (the skip connection) and its gradient ----
    struct CropConcat { i64 batch, h, w, ca, cs, hs, ws, oy, ox; };

    // The shape in units of `unit` elements (ca and cs multiples of it), as 32-bit values.
    struct CropConcat32 {
      u32 h, w, ca, cs, c, hs, ws, oy, ox;
      DEVICE CropConcat32(const CropConcat& s, u32 unit)
          : h((u32)s.h), w((u32)s.w), ca((u32)s.ca / unit), cs((u32)s.cs / unit), c(ca + cs), hs((u32)s.hs),
            ws((u32)s.ws), oy((u32)s.oy), ox((u32)s.ox) {}
    };

    // Output unit i from the unit it copies.
    template <class U>
    DEVICE void cropConcatUnits(const U* __restrict__ a, const U* __restrict__ skip, U* __restrict__ out, i64 units,
        const CropConcat32 s) {
    #pragma unroll 1
      for (i64 i = gridStart(); i < units; i += gridStep()) {
        const u32 j = (u32)i, pixel = j / s.c, ch = j - pixel * s.c;
        const u32 row = pixel / s.w, x = pixel - row * s.w, n = row / s.h, y = row - n * s.h;
        out[i] = ch < s.ca ? a[pixel * s.ca + ch] : skip[((n * s.hs + y + s.oy) * s.ws + x + s.ox) * s.cs + ch - s.ca];
      }
    }

    // Units 0..<ga's of the index space write ga, the rest gs; a skip coordinate left of or above
    // the window wraps around as unsigned, so one comparison per axis finds the window.
    template <class U>
    DEVICE void cropConcatBackwardUnits(const U* __restrict__ g, U* __restrict__ ga, U* __restrict__ gs, i64 units,
        const CropConcat32 s, u32 gaUnits) {
    #pragma unroll 1
      for (i64 i = gridStart(); i < units; i += gridStep()) {
        const u32 j = (u32)i;
        if (j < gaUnits) {
          const u32 pixel = j / s.ca;
          ga[j] = g[pixel * s.c + j - pixel * s.ca];
        } else {
          const u32 k = j - gaUnits, pixel = k / s.cs, ch = k - pixel * s.cs;
          const u32 row = pixel / s.ws, x = pixel - row * s.ws - s.ox, n = row / s.hs, y = row - n * s.hs - s.oy;
          gs[k] = y < s.h && x < s.w ? g[((n * s.h + y) * s.w + x) * s.c + s.ca + ch] : U();
        }
      }
    }

    // 16-byte units when both channel counts are whole vectors and the buffers aligned.
    template <class E>
    DEVICE bool cropConcatVectors(const CropConcat& s, const void* p, const void* q, const void* r) {
      const i64 N = 16 / sizeof(E);
      return s.ca % N == 0 && s.cs % N == 0 && aligned16(p) && aligned16(q) && aligned16(r);
    }

    template <class E>
    DEVICE void cropConcat(const E* a, const E* skip, E* out, i64 n, const CropConcat& s) {
      const u32 N = 16 / sizeof(E);
      if (cropConcatVectors<E>(s, a, skip, out)) {
        cropConcatUnits<V16>(
            reinterpret_cast<const V16*>(a), reinterpret_cast<const V16*>(skip), reinterpret_cast<V16*>(out), n / N,
            CropConcat32(s, N));
      } else {
        cropConcatUnits<E>(a, skip, out, n, CropConcat32(s, 1));
      }
    }

    template <class E>
    DEVICE void cropConcatBackward(const E* g, E* ga, E* gs, i64 n, const CropConcat& s) {
      const u32 N = 16 / sizeof(E), gaElements = (u32)(s.batch * s.h * s.w * s.ca);
      if (cropConcatVectors<E>(s, g, ga, gs)) {
        cropConcatBackwardUnits<V16>(
            reinterpret_cast<const V16*>(g), reinterpret_cast<V16*>(ga), reinterpret_cast<V16*>(gs), n / N,
            CropConcat32(s, N), gaElements / N);
      } else {
        cropConcatBackwardUnits<E>(g, ga, gs, n, CropConcat32(s, 1), gaElements);
      }
    }

    #define COPY(BYTES, E)                                                                        \
      KERNEL copy_b##BYTES(const E* src, E* dst, i64 n, Dims dims, Vec ss, i64 sbase, Vec ds, i64 dbase) { \
        if (copiesVectors<E>(src, dst, dims, ss, sbase, ds, dbase)) vectorCopy<E>(src, dst, dims, ss, sbase, ds, dbase); \
        else stridedCopy<E>(src, dst, n, dims, ss, sbase, ds, dbase);                             \
      }                                                                                           \
      KERNEL pad_b##BYTES(const E* src, E* dst, i64 n, Dims out, Vec before, Vec in, Vec inStrides, i64 reflect) { \
        if (padsVectors<E>(src, dst, out, before, in, inStrides)) vectorPad<E>(src, dst, n, out, before, in, inStrides, reflect); \
        else padElements<E>(src, dst, n, out, before, in, inStrides, reflect);                    \
      }                                                                                           \
      KERNEL cropConcat_b##BYTES(const E* a, const E* skip, E* out, i64 n, CropConcat s) { cropConcat<E>(a, skip, out, n, s); } \
      KERNEL cropConcatBackward_b##BYTES(const E* g, E* ga, E* gs, i64 n, CropConcat s) { cropConcatBackward<E>(g, ga, gs, n, s); }

    // ---- PadBackward (adjoint of reflect padding) ----
    template <class T>
    DEVICE void padBackward(
        const T* g, T* out, i64 n, const Dims& interior, const Vec& before, const Vec& after, const Vec& gStrides) {
      typedef typename Elem<T>::C C;
      const int rank = (int)interior.rank;
      #pragma unroll 1
      for (i64 i = gridStart(); i < n; i += gridStep()) {
        // Per axis, the offsets in g of the padded coordinates that hold this interior coordinate,
        // in increasing order (the left mirror, the element itself, the right mirror): first[k],
        // second[k], third[k], count[k] of them. Every loop runs over MAX_RANK, unrolled, so that
        // these live in registers (indexed at run time they would be local memory).
        i64 first[MAX_RANK], second[MAX_RANK], third[MAX_RANK];
        int count[MAX_RANK], idx[MAX_RANK];
        u64 r = (u64)i;
    #pragma unroll
        for (int k = MAX_RANK - 1; k >= 0; --k) {
          first[k] = second[k] = third[k] = 0;
          count[k] = 1;
          idx[k] = 0;
          if (k >= rank) continue;
          const i64 m = interior.v[k], b = before.v[k], a = after.v[k], s = gStrides.v[k];
          u64 cu;
          r = udiv(r, (u64)m, cu);
          const i64 c = (i64)cu;
          const bool left = c >= 1 && c <= b, right = c >= m - 1 - a && c <= m - 2;
          const i64 self = (b + c) * s, mirror = (b + 2 * (m - 1) - c) * s;
          first[k] = left ? (b - c) * s : self;
          second[k] = left ? self : mirror;
          third[k] = mirror;
          count[k] = 1 + (int)left + (int)right;
        }
        C acc = 0;
        for (;;) {
          i64 off = 0;
    #pragma unroll
          for (int k = 0; k < MAX_RANK; ++k) {
            if (k < rank) off += idx[k] == 0 ? first[k] : idx[k] == 1 ? second[k] : third[k];
          }
          acc += Elem<T>::load(g[off]);
          // The next combination, the last axis fastest (the padded tensor's row-major order).
          bool carry = true;
    #pragma unroll
          for (int k = MAX_RANK - 1; k >= 0; --k) {
            if (k >= rank || !carry) continue;
            if (++idx[k] < count[k]) carry = false;
            else idx[k] = 0;
          }
          if (carry) break;
        }
        out[i] = Elem<T>::store(acc);
      }
    }

    #define PAD_BACKWARD(T, SUFFIX)                                                               \
      KERNEL padBackward_##SUFFIX(const T* g, T* out, i64 n, Dims interior, Vec before, Vec after, Vec gStrides) { \
        padBackward<T>(g, out, n, interior, before, after, gStrides);                             \
      }
    """#
}
