// Reductions (sum, mean, max, min): contiguous rows (a block per row), columns of
// [outer, len, inner] (a thread per output, coalesced across inner), or any axes set (a thread
// per output walking the reduced index space). Also serves the global poolings.
#include "knc_common.cuh"

#include <math.h>

namespace knc {

template <typename C> __device__ __forceinline__ C red_init(int op) {
    if (op == KNC_RED_MAX) {
        if constexpr (std::is_floating_point<C>::value) return (C)-INFINITY;
        else return (C)INT64_MIN;
    }
    if (op == KNC_RED_MIN) {
        if constexpr (std::is_floating_point<C>::value) return (C)INFINITY;
        else return (C)INT64_MAX;
    }
    return (C)0;
}
template <typename C> __device__ __forceinline__ C red_step(int op, C a, C v) {
    switch (op) {
    case KNC_RED_MAX:
        if constexpr (std::is_floating_point<C>::value) { if (v != v) return v; }
        return v > a ? v : a;
    case KNC_RED_MIN:
        if constexpr (std::is_floating_point<C>::value) { if (v != v) return v; }
        return v < a ? v : a;
    default: return a + v;
    }
}
template <typename C> __device__ __forceinline__ C red_finish(int op, C a, int64_t n) {
    return op == KNC_RED_MEAN ? (C)(a / (C)n) : a;
}

template <typename T> __global__ void reduce_rows(const __grid_constant__ knc_reduce p) {
    using C = acc_t<T>;
    __shared__ C sh[32];
    const int64_t row = blockIdx.x;
    const T *x = (const T *)p.in + row * p.len;
    C a = red_init<C>(p.op);
    for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) a = red_step<C>(p.op, a, ld<T>(x, j));
    int bop = p.op == KNC_RED_MAX ? 1 : p.op == KNC_RED_MIN ? 2 : 0;
    // NaN: max/min of the warp shuffles keep NaN only by luck; check explicitly
    int has_nan = 0;
    if constexpr (std::is_floating_point<C>::value) has_nan = __syncthreads_or(bop != 0 && a != a);
    a = block_reduce<C>(a, bop, sh);
    if (threadIdx.x == 0) {
        C r = red_finish<C>(p.op, a, p.len);
        if constexpr (std::is_floating_point<C>::value) { if (has_nan) r = (C)NAN; }
        st<T>(p.out, row, r);
    }
}

template <typename T> __global__ void __launch_bounds__(256) reduce_cols(const __grid_constant__ knc_reduce p) {
    using C = acc_t<T>;
    int64_t n = p.outer * p.inner;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = i / p.inner, k = i % p.inner;
        const T *x = (const T *)p.in + o * p.len * p.inner + k;
        C a = red_init<C>(p.op);
        for (int64_t j = 0; j < p.len; j++) a = red_step<C>(p.op, a, ld<T>(x, j * p.inner));
        st<T>(p.out, i, red_finish<C>(p.op, a, p.len));
    }
}

// Columns of [outer, len, inner] by 32 x 8 tiles: a block covers 32 neighbouring columns of one
// outer index (coalesced across inner) and splits len 8 ways, then combines the 8 partials in
// shared memory. The global average pool of an NHWC block (len = H*W, inner = C) is this shape;
// with a thread per column, batch 1 of ResNet-18 put 512 columns on 2 blocks of 49 serial loads.
template <typename T> __global__ void __launch_bounds__(256) reduce_cols_tiled(const __grid_constant__ knc_reduce p) {
    using C = acc_t<T>;
    __shared__ C part[8][33];
    const int64_t o = blockIdx.y, k = (int64_t)blockIdx.x * 32 + threadIdx.x;
    C a = red_init<C>(p.op);
    if (k < p.inner) {
        const T *x = (const T *)p.in + o * p.len * p.inner + k;
        for (int64_t j = threadIdx.y; j < p.len; j += 8) a = red_step<C>(p.op, a, ld<T>(x, j * p.inner));
    }
    part[threadIdx.y][threadIdx.x] = a;
    __syncthreads();
    if (threadIdx.y == 0 && k < p.inner) {
        for (int r = 1; r < 8; r++) a = red_step<C>(p.op, a, part[r][threadIdx.x]);
        st<T>(p.out, o * p.inner + k, red_finish<C>(p.op, a, p.len));
    }
}

template <typename T> __global__ void __launch_bounds__(256) reduce_generic(const __grid_constant__ knc_reduce p) {
    using C = acc_t<T>;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n_out; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, base = 0;
        for (int d = p.n_keep - 1; d >= 0; d--) {
            base += (rem % p.keep_dims[d]) * p.keep_strides[d];
            rem /= p.keep_dims[d];
        }
        C a = red_init<C>(p.op);
        for (int64_t r = 0; r < p.n_red_total; r++) {
            int64_t rr = r, off = base;
            for (int d = p.n_red - 1; d >= 0; d--) {
                off += (rr % p.red_dims[d]) * p.red_strides[d];
                rr /= p.red_dims[d];
            }
            a = red_step<C>(p.op, a, ld<T>(p.in, off));
        }
        st<T>(p.out, i, red_finish<C>(p.op, a, p.n_red_total));
    }
}

} // namespace knc

using namespace knc;

extern "C" cudaError_t knc_reduce_launch(const knc_reduce *p, cudaStream_t s) {
    switch (p->mode) {
    case KNC_RED_ROWS: {
        if (p->outer <= 0) return cudaSuccess;
        if (p->outer > INT32_MAX) return cudaErrorInvalidValue;
        int t = threads_for_len(p->len);
        if (p->len >= 4096) t = 512;
        KNC_DISPATCH_ALL(p->dtype, reduce_rows<T><<<(unsigned)p->outer, t, 0, s>>>(*p));
        break;
    }
    case KNC_RED_COLS: {
        int64_t n = p->outer * p->inner;
        if (n <= 0) return cudaSuccess;
        if (p->outer <= 65535 && p->len >= 8 && (p->inner + 31) / 32 <= INT32_MAX) {
            dim3 grid((unsigned)((p->inner + 31) / 32), (unsigned)p->outer), block(32, 8);
            KNC_DISPATCH_ALL(p->dtype, reduce_cols_tiled<T><<<grid, block, 0, s>>>(*p));
        } else {
            KNC_DISPATCH_ALL(p->dtype, reduce_cols<T><<<grid_for(n, 256), 256, 0, s>>>(*p));
        }
        break;
    }
    default: {
        if (p->n_out <= 0) return cudaSuccess;
        KNC_DISPATCH_ALL(p->dtype, reduce_generic<T><<<grid_for(p->n_out, 256), 256, 0, s>>>(*p));
        break;
    }
    }
    return cudaGetLastError();
}
