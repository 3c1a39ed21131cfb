// Neural-network kernels: max/average pooling (1-3 spatial dims), softmax and log-softmax, row
// normalization (layer and instance norm) and inference batch norm. All accumulate in float
// (double for f64); MaxPool also takes int8 and uint8, compared in int64.
#include "knc_common.cuh"

#include <math.h>

namespace knc {

// What a max window that sees only padding yields: -inf for floats, the type's lowest value for
// the integer types MaxPool takes (as the CPU backend's kn_pool_lowest).
template <typename T> __device__ __forceinline__ acc_t<T> pool_lowest() {
    if constexpr (std::is_same<T, int8_t>::value) return (acc_t<T>)-128;
    else if constexpr (std::is_same<T, uint8_t>::value) return (acc_t<T>)0;
    else return (acc_t<T>)-INFINITY;
}

// MaxPool over float, int8 and uint8 (integers compare in int64); AveragePool over floats only.
template <typename T> __global__ void __launch_bounds__(256) pool_kernel(const knc_pool p, int64_t n) {
    using C = acc_t<T>;
    const int64_t osz0 = p.out_sp[0], osz1 = p.out_sp[1], osz2 = p.out_sp[2];
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ch = 0, t = i;
        if (p.nhwc) { ch = t % p.c; t /= p.c; }
        int64_t o2 = t % osz2;
        t /= osz2;
        int64_t o1 = t % osz1; t /= osz1;
        int64_t o0 = t % osz0;
        int64_t nc = t / osz0;
        int64_t o[3] = {o0, o1, o2};
        int64_t start[3], end[3], pend[3];
        for (int d = 0; d < 3; d++) {
            start[d] = o[d] * p.stride[d] - p.pad_begin[d];
            end[d] = start[d] + (p.k[d] - 1) * p.dil[d] + 1;
            pend[d] = end[d] < p.in_sp[d] + p.pad_end[d] ? end[d] : p.in_sp[d] + p.pad_end[d];
        }
        // NHWC: nc is the batch index, elements of one channel lie p.c apart
        const int64_t cs = p.nhwc ? p.c : 1;
        const T *base = (const T *)p.in + nc * p.in_sp[0] * p.in_sp[1] * p.in_sp[2] * cs + ch;
        C acc = 0;
        C best = 0;
        int64_t best_idx = -1, count = 0;
        for (int64_t a = start[0]; a < end[0]; a += p.dil[0]) {
            if (a < 0 || a >= p.in_sp[0]) continue;
            for (int64_t b = start[1]; b < end[1]; b += p.dil[1]) {
                if (b < 0 || b >= p.in_sp[1]) continue;
                for (int64_t c = start[2]; c < end[2]; c += p.dil[2]) {
                    if (c < 0 || c >= p.in_sp[2]) continue;
                    int64_t off = (a * p.in_sp[1] + b) * p.in_sp[2] + c;
                    C v = ld<T>(base, off * cs);
                    if (p.is_max) {
                        // the first NaN wins and stays (its index too), as on the CPU
                        bool nan = false;
                        if constexpr (std::is_floating_point<C>::value) nan = v != v && best == best;
                        if (best_idx < 0 || v > best || nan) {
                            best = v;
                            best_idx = p.col_major ? (c * p.in_sp[1] + b) * p.in_sp[0] + a : off;
                        }
                    } else {
                        acc += v;
                        count++;
                    }
                }
            }
        }
        if (p.is_max) {
            st<T>(p.out, i, best_idx < 0 ? pool_lowest<T>() : best);
            if (p.indices) p.indices[i] = best_idx < 0 ? 0 : nc * p.in_sp[0] * p.in_sp[1] * p.in_sp[2] + best_idx;
        } else {
            int64_t div = count;
            if (p.count_include_pad) {
                div = 1;
                for (int d = 0; d < 3; d++) div *= (pend[d] - start[d] + p.dil[d] - 1) / p.dil[d];
            }
            st<T>(p.out, i, div > 0 ? (C)(acc / (C)div) : (C)0);
        }
    }
}

// One block per row (inner == 1).
template <typename T> __global__ void softmax_rows(const T *in, T *out, int64_t len, int log_out) {
    using C = acc_t<T>;
    __shared__ C sh[32];
    const int64_t row = blockIdx.x;
    const T *x = in + row * len;
    T *y = out + row * len;
    C m = -INFINITY;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) { C v = ld<T>(x, j); m = v > m ? v : m; }
    m = block_reduce<C>(m, 1, sh);
    C sum = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) sum += exp(ld<T>(x, j) - m);
    sum = block_reduce<C>(sum, 0, sh);
    if (log_out) {
        C ls = log(sum);
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) st<T>(y, j, ld<T>(x, j) - m - ls);
    } else {
        C inv = (C)1 / sum;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) st<T>(y, j, exp(ld<T>(x, j) - m) * inv);
    }
}

// One thread per (outer, inner) column (inner > 1): coalesced across inner.
template <typename T>
__global__ void __launch_bounds__(256) softmax_cols(const T *in, T *out, int64_t outer, int64_t len, int64_t inner, int log_out) {
    using C = acc_t<T>;
    int64_t n = outer * inner;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t o = i / inner, k = i % inner;
        const T *x = in + o * len * inner + k;
        T *y = out + o * len * inner + k;
        C m = -INFINITY;
        for (int64_t j = 0; j < len; j++) { C v = ld<T>(x, j * inner); m = v > m ? v : m; }
        C sum = 0;
        for (int64_t j = 0; j < len; j++) sum += exp(ld<T>(x, j * inner) - m);
        if (log_out) {
            C ls = log(sum);
            for (int64_t j = 0; j < len; j++) st<T>(y, j * inner, ld<T>(x, j * inner) - m - ls);
        } else {
            C inv = (C)1 / sum;
            for (int64_t j = 0; j < len; j++) st<T>(y, j * inner, exp(ld<T>(x, j * inner) - m) * inv);
        }
    }
}

template <typename T> __global__ void rownorm_kernel(const knc_rownorm p) {
    using C = acc_t<T>;
    __shared__ C sh[32];
    const int64_t row = blockIdx.x;
    const T *x = (const T *)p.x + row * p.len;
    T *y = (T *)p.y + row * p.len;
    C sum = 0;
    for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) sum += ld<T>(x, j);
    C mean = block_reduce<C>(sum, 0, sh) / (C)p.len;
    C sq = 0;
    for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) { C d = ld<T>(x, j) - mean; sq += d * d; }
    C var = block_reduce<C>(sq, 0, sh) / (C)p.len;
    C rstd = (C)1 / sqrt(var + (C)p.eps);
    if (threadIdx.x == 0) {
        if (p.mean) stf(p.mean, p.stat_dtype, row, (float)mean);
        if (p.rstd) stf(p.rstd, p.stat_dtype, row, (float)rstd);
    }
    if (p.per_channel) {
        int64_t c = row % p.channels;
        C g = p.gamma ? (C)ldf(p.gamma, p.param_dtype, c) : (C)1;
        C b = p.beta ? (C)ldf(p.beta, p.param_dtype, c) : (C)0;
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) st<T>(y, j, (ld<T>(x, j) - mean) * rstd * g + b);
    } else {
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) {
            C g = p.gamma ? (C)ldf(p.gamma, p.param_dtype, p.gamma_scalar ? 0 : j) : (C)1;
            C b = p.beta ? (C)ldf(p.beta, p.param_dtype, p.beta_scalar ? 0 : j) : (C)0;
            st<T>(y, j, (ld<T>(x, j) - mean) * rstd * g + b);
        }
    }
}

template <typename T> __global__ void __launch_bounds__(256) batchnorm_kernel(const knc_batchnorm p, int64_t n) {
    using C = acc_t<T>;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = (i / p.inner) % p.c;
        C g = (C)ldf(p.scale, p.scale_dtype, c), b = (C)ldf(p.bias, p.scale_dtype, c);
        C m = (C)ldf(p.mean, p.stat_dtype, c), v = (C)ldf(p.var, p.stat_dtype, c);
        st<T>(p.y, i, (ld<T>(p.x, i) - m) * ((C)1 / sqrt(v + (C)p.eps)) * g + b);
    }
}

} // namespace knc

using namespace knc;

extern "C" cudaError_t knc_pool_launch(const knc_pool *p, cudaStream_t s) {
    int64_t n = p->nc * p->out_sp[0] * p->out_sp[1] * p->out_sp[2];
    if (n <= 0) return cudaSuccess;
    if (p->nhwc && (p->indices || p->c <= 0 || p->nc % p->c)) return cudaErrorInvalidValue;
    if (!p->is_max && (p->indices || p->col_major)) return cudaErrorInvalidValue;
    unsigned g = grid_for(n, 256);
    if (p->is_max && p->dtype == KILN_I8) {
        pool_kernel<int8_t><<<g, 256, 0, s>>>(*p, n);
    } else if (p->is_max && p->dtype == KILN_U8) {
        pool_kernel<uint8_t><<<g, 256, 0, s>>>(*p, n);
    } else {
        KNC_DISPATCH_FLOAT(p->dtype, pool_kernel<T><<<g, 256, 0, s>>>(*p, n));
    }
    return cudaGetLastError();
}

extern "C" cudaError_t knc_softmax(const void *in, void *out, kiln_dtype dtype, int64_t outer, int64_t len,
                                   int64_t inner, int log_out, cudaStream_t s) {
    if (outer * len * inner <= 0) return cudaSuccess;
    if (inner == 1) {
        if (outer > INT32_MAX) return cudaErrorInvalidValue;
        int t = threads_for_len(len < 1024 ? len : 1024);
        if (len >= 2048) t = 512;
        KNC_DISPATCH_FLOAT(dtype, softmax_rows<T><<<(unsigned)outer, t, 0, s>>>((const T *)in, (T *)out, len, log_out));
    } else {
        unsigned g = grid_for(outer * inner, 256);
        KNC_DISPATCH_FLOAT(dtype, softmax_cols<T><<<g, 256, 0, s>>>((const T *)in, (T *)out, outer, len, inner, log_out));
    }
    return cudaGetLastError();
}

extern "C" cudaError_t knc_rownorm_launch(const knc_rownorm *p, cudaStream_t s) {
    if (p->rows <= 0 || p->len <= 0) return cudaSuccess;
    if (p->rows > INT32_MAX) return cudaErrorInvalidValue;
    int t = threads_for_len(p->len);
    if (p->len >= 4096) t = 512;
    KNC_DISPATCH_FLOAT(p->dtype, rownorm_kernel<T><<<(unsigned)p->rows, t, 0, s>>>(*p));
    return cudaGetLastError();
}

extern "C" cudaError_t knc_batchnorm_launch(const knc_batchnorm *p, cudaStream_t s) {
    int64_t n = p->n * p->c * p->inner;
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, 256);
    KNC_DISPATCH_FLOAT(p->dtype, batchnorm_kernel<T><<<g, 256, 0, s>>>(*p, n));
    return cudaGetLastError();
}
