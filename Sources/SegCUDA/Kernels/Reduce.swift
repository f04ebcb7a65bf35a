import SegCore

// MARK: - Reduction and softmax kernels

/// Sum over axes in two deterministic passes (no atomics, so every run adds in the same order),
/// and softmax / log-softmax over the last axis, for f32, f16, bf16 and f64 (accumulating in f32,
/// f64 for f64).
///
/// `sumPartial_<dtype>(x, partial, outCount, chunks, chunk, redCount, kept, keptStrides, red,
/// redStrides)`: output element m (row-major over the kept axes `kept`) starts at
/// offsetOf(m, kept, keptStrides) in x; reduced element r (row-major over `red`) adds
/// offsetOf(r, red, redStrides). Thread (c, m) sums r in [c * chunk, (c + 1) * chunk) into
/// partial[c * outCount + m]. `sumFinish_<dtype>(partial, out, outCount, chunks)` adds the chunks.
///
/// `sumRows_<dtype>(x, partial, out, counters, batches, rows, cols, slabs, slabRows)`:
/// out[b * cols + m] = the sum of x[(b * rows + r) * cols + m] over r (a bias gradient, a sum of
/// everything, a per-image sum over the pixels), both passes in one launch. A tile of up to 32
/// columns of one batch by a slab of `slabRows` rows is one block's work item: its threads take
/// the tile's columns, several rows apart (lanes), and their sums are added in shared memory into
/// partial[slab * batches * cols + b * cols + m]. The block that finishes a tile's last slab (a ticket from
/// counters[tile], after a memory fence) adds the tile's slabs in order and sets the counter back
/// to 0 for the next launch. Which block finishes varies; the order of the additions does not.
///
/// `softmax_<dtype>(x, out, rows, n)` and `logSoftmax_<dtype>`: one thread per row of n elements
/// (a few classes per pixel). `softmaxBlock_<dtype>` and `logSoftmaxBlock_<dtype>`, same
/// arguments: one block per row (grid-stride over rows), for long rows: the threads read the row
/// together (coalesced) and reduce its maximum and sum in shared memory and warp shuffles, in an
/// order fixed by the block size.
enum ReduceKernels {
  static let family = KernelFamily(
    name: "reduce", body: body,
    instances: KernelNames.floats.flatMap { d -> [(String, String)] in
      let t = KernelNames.cType(d), s = d.rawValue
      return [
        (KernelNames.name("sumPartial", d), "SUM(\(t), \(s))"),
        (KernelNames.name("sumFinish", d), ""),
        (KernelNames.name("sumRows", d), "SUM_ROWS(\(t), \(s))"),
        (KernelNames.name(OpKind.softmax.rawValue, d), "SOFTMAX(\(t), \(s))"),
        (KernelNames.name(OpKind.logSoftmax.rawValue, d), ""),
        (KernelNames.name("softmaxBlock", d), ""),
        (KernelNames.name("logSoftmaxBlock", d), ""),
      ]
    })

  static let body = #"""
    // ---- Sum ----
    template <class T>
    DEVICE void sumPartial(
        const T* x, typename Elem<T>::C* partial, i64 outCount, i64 chunks, i64 chunk, i64 redCount,
        const Dims& kept, const Vec& keptStrides, const Dims& red, const Vec& redStrides) {
      typedef typename Elem<T>::C C;
      #pragma unroll 1
      for (i64 t = gridStart(); t < outCount * chunks; t += gridStep()) {
        u64 mu;
        const i64 c = (i64)udiv((u64)t, (u64)outCount, mu), m = (i64)mu;
        const i64 lo = c * chunk, hi = lo + chunk < redCount ? lo + chunk : redCount;
        const T* base = x + offsetOf(m, kept, keptStrides);
        // An odometer over the reduced axes, starting at lo.
        i64 idx[MAX_RANK];
        u64 rest = (u64)lo;
        i64 off = 0;
    #pragma unroll
        for (int k = MAX_RANK - 1; k >= 0; --k) {
          if (k >= (int)red.rank) continue;
          u64 c;
          rest = udiv(rest, (u64)red.v[k], c);
          idx[k] = (i64)c;
          off += idx[k] * redStrides.v[k];
        }
        C acc = 0;
        const int rank = (int)red.rank;
        for (i64 r = lo; r < hi; ++r) {
          acc += Elem<T>::load(base[off]);
          // Unrolled over MAX_RANK (fixed indices): the odometer stays in registers.
    #pragma unroll
          for (int k = MAX_RANK - 1; k >= 0; --k) {
            if (k >= rank) continue;
            ++idx[k];
            off += redStrides.v[k];
            if (idx[k] < red.v[k]) break;
            off -= redStrides.v[k] * red.v[k];
            idx[k] = 0;
          }
        }
        partial[t] = acc;
      }
    }

    template <class T>
    DEVICE void sumFinish(const typename Elem<T>::C* partial, T* out, i64 outCount, i64 chunks) {
      typedef typename Elem<T>::C C;
      #pragma unroll 1
      for (i64 m = gridStart(); m < outCount; m += gridStep()) {
        C acc = 0;
        for (i64 c = 0; c < chunks; ++c) acc += partial[c * outCount + m];
        out[m] = Elem<T>::store(acc);
      }
    }

    #define SUM(T, SUFFIX)                                                                          \
      KERNEL sumPartial_##SUFFIX(const T* x, Elem<T>::C* partial, i64 outCount, i64 chunks, i64 chunk, \
          i64 redCount, Dims kept, Vec keptStrides, Dims red, Vec redStrides) {                     \
        sumPartial<T>(x, partial, outCount, chunks, chunk, redCount, kept, keptStrides, red, redStrides); \
      }                                                                                             \
      KERNEL sumFinish_##SUFFIX(const Elem<T>::C* partial, T* out, i64 outCount, i64 chunks) {      \
        sumFinish<T>(partial, out, outCount, chunks);                                               \
      }

    // ---- Sum over the rows of a row-major [rows, cols], in one launch ----
    // Every thread of a block reaches every barrier: the branches around them are per block.
    template <class T>
    DEVICE void sumRows(
        const T* __restrict__ x, typename Elem<T>::C* partial, T* out, unsigned* counters, i64 batches, i64 rows,
        i64 cols, i64 slabs, i64 slabRows) {
      typedef typename Elem<T>::C C;
      __shared__ C lanes[1024];
      __shared__ unsigned ticket;
      // 32-bit divisions within a block, `udiv` across the grid: no 64-bit division.
      const unsigned width = cols < 32 ? (unsigned)cols : 32u, laneCount = blockDim.x / width;
      const unsigned j = threadIdx.x, column = j % width, lane = j / width;
      const i64 columnTiles = quotient(cols + width - 1, width), tiles = batches * columnTiles;
      #pragma unroll 1
      for (i64 w = blockIdx.x; w < tiles * slabs; w += gridDim.x) {
        u64 tileAt, columnTile;
        const i64 slab = (i64)udiv((u64)w, (u64)tiles, tileAt), tile = (i64)tileAt;
        const i64 b = (i64)udiv(tileAt, (u64)columnTiles, columnTile);
        const i64 m = (i64)columnTile * width + column, at = b * cols + m;
        const bool works = lane < laneCount && m < cols;
        C acc = 0;
        if (works) {
          const T* xb = x + b * rows * cols + m;
          // A 32-bit count of rows (as every index below 4G elements), so that the unrolled loop's
          // trip count is no 64-bit division.
          const i64 lo = slab * slabRows, hi = lo + slabRows < rows ? lo + slabRows : rows;
          const unsigned span = hi > lo ? (unsigned)(hi - lo) : 0u;
          const T* xs = xb + lo * cols;
          #pragma unroll 4
          for (unsigned k = lane; k < span; k += laneCount) acc += Elem<T>::load(xs[(i64)k * cols]);
        }
        lanes[j] = acc;
        __syncthreads();
        if (works && lane == 0) {
          C s = 0;
          for (i64 l = 0; l < laneCount; ++l) s += lanes[l * width + column];
          partial[slab * batches * cols + at] = s;
        }
        __threadfence();
        __syncthreads();
        if (j == 0) ticket = atomicAdd(counters + tile, 1u);
        __syncthreads();
        if (ticket == (unsigned)(slabs - 1)) {
          // The last slab of this tile is in: add the tile's slabs, read past any cache.
          const volatile C* sums = partial;
          C total = 0;
          if (works)
            for (unsigned s = lane; s < (unsigned)slabs; s += laneCount) total += sums[(i64)s * batches * cols + at];
          lanes[j] = total;
          __syncthreads();
          if (works && lane == 0) {
            C s = 0;
            for (i64 l = 0; l < laneCount; ++l) s += lanes[l * width + column];
            out[at] = Elem<T>::store(s);
          }
          if (j == 0) counters[tile] = 0u;
        }
        __syncthreads();
      }
    }

    #define SUM_ROWS(T, SUFFIX)                                                                     \
      KERNEL sumRows_##SUFFIX(const T* x, Elem<T>::C* partial, T* out, unsigned* counters, i64 batches, i64 rows, \
          i64 cols, i64 slabs, i64 slabRows) {                                                      \
        sumRows<T>(x, partial, out, counters, batches, rows, cols, slabs, slabRows);                \
      }

    // ---- Softmax over the last axis ----
    // The row's maximum is subtracted before exponentiating, so large logits do not overflow.
    template <class T, bool LOG>
    DEVICE void softmaxRows(const T* x, T* out, i64 rows, i64 n) {
      typedef typename Elem<T>::C C;
      #pragma unroll 1
      for (i64 r = gridStart(); r < rows; r += gridStep()) {
        const T* xr = x + r * n;
        T* yr = out + r * n;
        C m = Elem<T>::load(xr[0]);
        for (i64 j = 1; j < n; ++j) {
          const C v = Elem<T>::load(xr[j]);
          if (v > m) m = v;
        }
        C total = 0;
        for (i64 j = 0; j < n; ++j) total += cexp(Elem<T>::load(xr[j]) - m);
        if (LOG) {
          const C logTotal = clog(total);
          for (i64 j = 0; j < n; ++j) yr[j] = Elem<T>::store((Elem<T>::load(xr[j]) - m) - logTotal);
        } else {
          for (i64 j = 0; j < n; ++j) yr[j] = Elem<T>::store(cexp(Elem<T>::load(xr[j]) - m) / total);
        }
      }
    }

    // ---- Block reductions ----
    struct MaxOp { template <class C> static DEVICE C apply(C a, C b) { return b > a ? b : a; } };
    struct SumOp { template <class C> static DEVICE C apply(C a, C b) { return a + b; } };

    // Op over the 32 lanes of each warp; lane 0 holds the result. Every thread of the block calls it.
    template <class Op, class C> DEVICE C warpReduce(C v) {
    #pragma unroll
      for (int o = 16; o > 0; o >>= 1) v = Op::apply(v, __shfl_down_sync(0xffffffffu, v, o));
      return v;
    }

    // Op over every thread's v (blockDim.x a multiple of 32, at most 1024), returned to all: warps
    // first, then their 32 partial results in warp 0. `identity` fills the missing warps. Every
    // thread of the block calls it; `scratch` is 32 entries of shared memory.
    template <class Op, class C> DEVICE C blockReduce(C v, C identity, C* scratch) {
      const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
      v = warpReduce<Op>(v);
      if (lane == 0) scratch[warp] = v;
      __syncthreads();
      v = threadIdx.x < warps ? scratch[threadIdx.x] : identity;
      v = warpReduce<Op>(v);
      __syncthreads();
      if (threadIdx.x == 0) scratch[0] = v;
      __syncthreads();
      const C result = scratch[0];
      __syncthreads();
      return result;
    }

    // Softmax of long rows, a block per row. A NaN anywhere in the row makes its sum NaN and so
    // every output NaN, as the thread-per-row kernel gives.
    template <class T, bool LOG>
    DEVICE void softmaxBlockRows(const T* __restrict__ x, T* __restrict__ out, i64 rows, i64 n) {
      typedef typename Elem<T>::C C;
      __shared__ C scratch[32];
      const C lowest = -C(1) / C(0);
    #pragma unroll 1
      for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * n;
        T* yr = out + r * n;
        C m = lowest;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) m = MaxOp::apply(m, Elem<T>::load(xr[j]));
        m = blockReduce<MaxOp>(m, lowest, scratch);
        C total = 0;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) total += cexp(Elem<T>::load(xr[j]) - m);
        total = blockReduce<SumOp>(total, C(0), scratch);
        if (LOG) {
          const C logTotal = clog(total);
          for (i64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = Elem<T>::store((Elem<T>::load(xr[j]) - m) - logTotal);
        } else {
          for (i64 j = threadIdx.x; j < n; j += blockDim.x) yr[j] = Elem<T>::store(cexp(Elem<T>::load(xr[j]) - m) / total);
        }
      }
    }

    #define SOFTMAX(T, SUFFIX)                                                                     \
      KERNEL softmax_##SUFFIX(const T* x, T* out, i64 rows, i64 n) { softmaxRows<T, false>(x, out, rows, n); } \
      KERNEL logSoftmax_##SUFFIX(const T* x, T* out, i64 rows, i64 n) { softmaxRows<T, true>(x, out, rows, n); } \
      KERNEL softmaxBlock_##SUFFIX(const T* x, T* out, i64 rows, i64 n) { softmaxBlockRows<T, false>(x, out, rows, n); } \
      KERNEL logSoftmaxBlock_##SUFFIX(const T* x, T* out, i64 rows, i64 n) { softmaxBlockRows<T, true>(x, out, rows, n); }
    """#
}
