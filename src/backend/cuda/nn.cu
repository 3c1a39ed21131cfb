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
template <typename T> __global__ void __launch_bounds__(256) pool_kernel(const __grid_constant__ knc_pool p, int64_t n) {
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

// The running maximum with x taken in; the first NaN wins and stays, as on the CPU (the pools
// here carry no index, so any NaN).
__device__ __forceinline__ float pool_max_nan(float acc, float x) { return (x > acc || (x != x && acc == acc)) ? x : acc; }

// An average's divisor for a 2-D window with top-left corner (h0, w0): the `count` taps inside
// the image, or with count_include_pad the taps inside the padded image.
__device__ __forceinline__ int pool2d_avg_divisor(const knc_pool &p, int h0, int w0, int kh, int kw, int dh, int dw,
                                                  int count) {
    if (!p.count_include_pad) return count;
    int eh = h0 + (kh - 1) * dh + 1, ew = w0 + (kw - 1) * dw + 1;
    const int lh = (int)p.in_sp[1] + (int)p.pad_end[1], lw = (int)p.in_sp[2] + (int)p.pad_end[2];
    eh = eh < lh ? eh : lh;
    ew = ew < lw ? ew : lw;
    return ((eh - h0 + dh - 1) / dh) * ((ew - w0 + dw - 1) / dw);
}

// The taps of a 2-D window with top-left corner (h0, w0) over an H x W image: take(load(h, w))
// for each tap inside it. KS > 0: a fixed KS x KS window without dilation (ResNet's 3x3 pools)
// whose loads are all issued before the first is used (one at a time, a batch-1 pool waited on
// nine memory latencies per thread); else kh x kw with dilations dh, dw.
template <int KS, typename L, typename F>
__device__ __forceinline__ void pool2d_taps(int h0, int w0, int H, int W, int kh, int kw, int dh, int dw, L load, F take) {
    if constexpr (KS > 0) {
        using V = decltype(load(0, 0));
        V v[KS * KS];
        bool in[KS * KS];
#pragma unroll
        for (int a = 0; a < KS; a++)
#pragma unroll
            for (int b = 0; b < KS; b++) {
                const int h = h0 + a, w = w0 + b;
                in[a * KS + b] = h >= 0 && h < H && w >= 0 && w < W;
                v[a * KS + b] = in[a * KS + b] ? load(h, w) : V{};
            }
#pragma unroll
        for (int e = 0; e < KS * KS; e++)
            if (in[e]) take(v[e]);
    } else {
        for (int a = 0; a < kh; a++) {
            const int h = h0 + a * dh;
            if (h < 0 || h >= H) continue;
            for (int b = 0; b < kw; b++) {
                const int w = w0 + b * dw;
                if (w >= 0 && w < W) take(load(h, w));
            }
        }
    }
}

// The window of vector i (16 bytes of channels of one output pixel) of a 2-D NHWC pool: take(raw)
// for each tap inside the image (pool2d_taps); *h0, *w0 get the window's top-left corner (for an
// average's divisor).
template <typename E, int KS, typename F>
__device__ __forceinline__ void nhwc_pool_window(const knc_pool &p, int i, int *h0, int *w0, F take) {
    constexpr int V = 16 / sizeof(E);
    const int C8 = (int)(p.c / V), H = (int)p.in_sp[1], W = (int)p.in_sp[2];
    const int OH = (int)p.out_sp[1], OW = (int)p.out_sp[2];
    int cv = i % C8, t = i / C8;
    int ow = t % OW; t /= OW;
    int oh = t % OH;
    int nb = t / OH;
    *h0 = oh * (int)p.stride[1] - (int)p.pad_begin[1];
    *w0 = ow * (int)p.stride[2] - (int)p.pad_begin[2];
    const E *base = (const E *)p.in + (size_t)nb * H * W * p.c + (size_t)cv * V;
    pool2d_taps<KS>(*h0, *w0, H, W, (int)p.k[1], (int)p.k[2], (int)p.dil[1], (int)p.dil[2],
                    [&](int h, int w) { return *(const uint4 *)(base + ((size_t)h * W + w) * p.c); }, take);
}

// 2-D pooling of NHWC f16/bf16/f32 data, one 16-byte vector of channels per thread (8 of f16, 4 of
// f32) and 32-bit index arithmetic. The layout pass gives every pool inside an fp16/bf16/tf32 engine block this form;
// the generic kernel above (64-bit divisions per element, one element per thread) ran ResNet's
// max pool at about a tenth of the memory bandwidth. Same results as the generic kernel: max
// keeps the first NaN (any NaN, since values carry no index here), average divides by the
// count of real or (count_include_pad) padded-window elements.
template <typename T, int KS> __global__ void __launch_bounds__(256) pool2d_nhwc_vec(const __grid_constant__ knc_pool p, int n) {
    constexpr int V = 16 / sizeof(T);
    const int kh = KS ? KS : (int)p.k[1], kw = KS ? KS : (int)p.k[2];
    const int dh = KS ? 1 : (int)p.dil[1], dw = KS ? 1 : (int)p.dil[2];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float acc[V];
        for (int j = 0; j < V; j++) acc[j] = p.is_max ? -INFINITY : 0.0f;
        int count = 0, h0, w0;
        nhwc_pool_window<T, KS>(p, i, &h0, &w0, [&](uint4 raw) {
            const T *v = (const T *)&raw;
            for (int j = 0; j < V; j++) {
                float x = to_acc<float, T>(v[j]);
                if (p.is_max) acc[j] = pool_max_nan(acc[j], x);
                else acc[j] += x;
            }
            count++;
        });
        if (!p.is_max) {
            const int div = pool2d_avg_divisor(p, h0, w0, kh, kw, dh, dw, count);
            for (int j = 0; j < V; j++) acc[j] = div > 0 ? acc[j] / (float)div : 0.0f;
        }
        uint4 out;
        T *o = (T *)&out;
        for (int j = 0; j < V; j++) o[j] = from_acc<T, float>(acc[j]);
        *(uint4 *)((T *)p.out + (size_t)i * V) = out;
    }
}

// 2-D pooling of NCHW float data (f32 nets keep NCHW), one output per thread with 32-bit index
// arithmetic; KS > 0: a fixed KS x KS window without dilation, every load issued before the first
// is used. The generic kernel above (64-bit divisions, three spatial loops) took 106 us for
// ResNet-18's 3x3/2 max pool at batch 16 in fp32 on an H200, twice PyTorch's 53 us. Same results
// as the generic kernel: max keeps the first NaN, average divides as pool2d_avg_divisor says.
template <typename T, int KS> __global__ void __launch_bounds__(256) pool2d_nchw(const __grid_constant__ knc_pool p, int n) {
    const int H = (int)p.in_sp[1], W = (int)p.in_sp[2], OH = (int)p.out_sp[1], OW = (int)p.out_sp[2];
    const int kh = KS ? KS : (int)p.k[1], kw = KS ? KS : (int)p.k[2];
    const int dh = KS ? 1 : (int)p.dil[1], dw = KS ? 1 : (int)p.dil[2];
    const int sh = (int)p.stride[1], sw = (int)p.stride[2], ph = (int)p.pad_begin[1], pw = (int)p.pad_begin[2];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const int ow = i % OW, t = i / OW, oh = t % OH, plane = t / OH;
        const int h0 = oh * sh - ph, w0 = ow * sw - pw;
        const T *base = (const T *)p.in + (size_t)plane * H * W;
        float acc = p.is_max ? -INFINITY : 0.0f;
        int count = 0;
        auto take = [&](float x) {
            if (p.is_max) acc = pool_max_nan(acc, x);
            else acc += x;
            count++;
        };
        pool2d_taps<KS>(h0, w0, H, W, kh, kw, dh, dw, [&](int h, int w) { return to_acc<float, T>(base[h * W + w]); }, take);
        if (!p.is_max) {
            const int div = pool2d_avg_divisor(p, h0, w0, kh, kw, dh, dw, count);
            acc = div > 0 ? acc / (float)div : 0.0f;
        }
        ((T *)p.out)[i] = from_acc<T, float>(acc);
    }
}

// Max pooling of NHWC f16/bf16 in the storage type: pairs compared with __hmax2_nan (a NaN wins,
// as in the vector kernel above), 16 bytes of channels per thread. The vector kernel converted
// every element to float and compared one at a time, which bound ResNet's 3x3/2 pool by
// arithmetic: 21.8 -> 8.6 us at batch 16, 275 -> 169 us at batch 256, 6.7 -> 2.3 us at batch 1
// (H100, scratch probe, outputs bit for bit the same; bench/NOTES.md section 14). KS > 0: a fixed
// KS x KS window without dilation, every load issued before the first is used.
template <typename T2, int KS> __global__ void __launch_bounds__(128) maxpool2d_nhwc_x2(const __grid_constant__ knc_pool p, int n) {
    // -inf in both halves: what a window of padding only yields (the vector kernel's -INFINITY)
    const unsigned short ninf_bits = std::is_same<T2, __half2>::value ? 0xFC00 : 0xFF80;
    T2 ninf;
    {
        unsigned int both = (unsigned int)ninf_bits * 0x10001u;
        memcpy(&ninf, &both, 4);
    }
    using E = typename std::conditional<std::is_same<T2, __half2>::value, __half, __nv_bfloat16>::type;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        T2 m[4] = {ninf, ninf, ninf, ninf};
        int h0, w0;
        nhwc_pool_window<E, KS>(p, i, &h0, &w0, [&](uint4 raw) {
            const T2 *v = (const T2 *)&raw;
#pragma unroll
            for (int j = 0; j < 4; j++) m[j] = __hmax2_nan(m[j], v[j]);
        });
        *(uint4 *)((E *)p.out + (size_t)i * 8) = *(const uint4 *)m;
    }
}

// The epilogue of kiln's NHWC direct convolutions: 8 accumulators of consecutive channels plus the
// residual's (NHWC like y), the activation, one 16-byte store at element `at` of y.
template <typename T>
__device__ __forceinline__ void conv8_epilogue(const knc_conv2d &g, const void *res, void *y, size_t at, float acc[8]) {
    if (res) {
        uint4 raw = *(const uint4 *)((const T *)res + at);
        const T *v = (const T *)&raw;
        for (int j = 0; j < 8; j++) acc[j] += to_acc<float, T>(v[j]);
    }
    uint4 out;
    T *o = (T *)&out;
    for (int j = 0; j < 8; j++) o[j] = from_acc<T, float>(act_apply<float>(g.act, acc[j], g.alpha, g.beta));
    *(uint4 *)((T *)y + at) = out;
}

// Depthwise convolution, NHWC: cuDNN 9.19's engines took 121 us for a 3x3 over 16x56x56x144 f16
// on an H200 (the data is 29 MB: about 8 us at memory speed). Consecutive threads take
// consecutive 8-channel vectors of one output pixel, so input loads are coalesced 16-byte reads
// and the window's rows are shared through L1. Each block first copies the weights into shared
// memory as [tap][C] (SMEM; at most 48 KB), so a tap's 8 weights are one 16-byte read too;
// otherwise they are read one by one from cache.
template <typename T, bool SMEM> __global__ void __launch_bounds__(256) dwconv_nhwc_v8(const __grid_constant__ knc_dwconv p, int total) {
    extern __shared__ uint4 smem_raw[];
    T *wsm = (T *)smem_raw;
    const int C8 = p.g.c / 8, RS = p.g.r * p.g.s;
    if (SMEM) {
        for (int e = threadIdx.x; e < p.g.c * RS; e += blockDim.x) {
            int c = e / RS, tap = e - c * RS;
            wsm[tap * p.g.c + c] = ((const T *)p.wt)[e];
        }
        __syncthreads();
    }
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int cv = i % C8, t = i / C8;
        int ow = t % p.g.ow; t /= p.g.ow;
        int oh = t % p.g.oh;
        int nb = t / p.g.oh;
        const int c0 = cv * 8;
        float acc[8];
        for (int j = 0; j < 8; j++) acc[j] = p.bias ? to_acc<float, T>(((const T *)p.bias)[c0 + j]) : 0.0f;
        const T *xb = (const T *)p.x + (size_t)nb * p.g.h * p.g.w * p.g.c + c0;
        const T *wb = (const T *)p.wt + (size_t)c0 * RS;
        for (int a = 0; a < p.g.r; a++) {
            int h = oh * p.g.stride[0] - p.g.pad[0] + a * p.g.dil[0];
            if (h < 0 || h >= p.g.h) continue;
            for (int b = 0; b < p.g.s; b++) {
                int w = ow * p.g.stride[1] - p.g.pad[1] + b * p.g.dil[1];
                if (w < 0 || w >= p.g.w) continue;
                uint4 raw = *(const uint4 *)(xb + ((size_t)h * p.g.w + w) * p.g.c);
                const T *v = (const T *)&raw;
                const int tap = a * p.g.s + b;
                if (SMEM) {
                    uint4 wraw = *(const uint4 *)(wsm + tap * p.g.c + c0);
                    const T *wv = (const T *)&wraw;
                    for (int j = 0; j < 8; j++) acc[j] += to_acc<float, T>(v[j]) * to_acc<float, T>(wv[j]);
                } else {
                    for (int j = 0; j < 8; j++) acc[j] += to_acc<float, T>(v[j]) * to_acc<float, T>(wb[j * RS + tap]);
                }
            }
        }
        conv8_epilogue<T>(p.g, p.res, p.y, (size_t)i * 8, acc);
    }
}

template <typename T> static cudaError_t dwconv_go(const knc_dwconv *p, int total, cudaStream_t s) {
    size_t smem = (size_t)p->g.c * p->g.r * p->g.s * sizeof(T);
    unsigned g = grid_for(total, 256);
    if (smem <= 48 * 1024) dwconv_nhwc_v8<T, true><<<g, 256, smem, s>>>(*p, total);
    else dwconv_nhwc_v8<T, false><<<g, 256, 0, s>>>(*p, total);
    return cudaGetLastError();
}

// Direct convolution, NHWC, few input channels (knc_dconv): kiln's provisional kernel for an
// image stem, which otherwise waits for a cuDNN plan at a new shape. The weights go to shared
// memory as [tap][c][K], so the 8 weights of a thread's output channels for one tap and input
// channel are one 16-byte read; the input's C values of a tap are read from cache.
template <typename T> __global__ void __launch_bounds__(256) dconv_nhwc_v8(const __grid_constant__ knc_dconv p, int total) {
    extern __shared__ uint4 smem_raw[];
    T *wsm = (T *)smem_raw;
    const int K = p.k, C = p.g.c, RSC = p.g.r * p.g.s * C, K8 = K / 8;
    for (int e = threadIdx.x; e < K * RSC; e += blockDim.x) { /* w[k][tap][c] -> wsm[tap][c][k] */
        int k = e / RSC;
        wsm[(e - k * RSC) * K + k] = ((const T *)p.w)[e];
    }
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        int kv = i % K8, t = i / K8;
        int ow = t % p.g.ow; t /= p.g.ow;
        int oh = t % p.g.oh;
        int nb = t / p.g.oh;
        const int k0 = kv * 8;
        float acc[8];
        for (int j = 0; j < 8; j++) acc[j] = p.bias ? to_acc<float, T>(((const T *)p.bias)[k0 + j]) : 0.0f;
        const T *xb = (const T *)p.x + (size_t)nb * p.g.h * p.g.w * C;
        for (int a = 0; a < p.g.r; a++) {
            int h = oh * p.g.stride[0] - p.g.pad[0] + a * p.g.dil[0];
            if (h < 0 || h >= p.g.h) continue;
            for (int b = 0; b < p.g.s; b++) {
                int w = ow * p.g.stride[1] - p.g.pad[1] + b * p.g.dil[1];
                if (w < 0 || w >= p.g.w) continue;
                const T *xp = xb + ((size_t)h * p.g.w + w) * C;
                const T *wt = wsm + (size_t)(a * p.g.s + b) * C * K + k0;
                for (int c = 0; c < C; c++) {
                    const float xv = to_acc<float, T>(xp[c]);
                    uint4 wraw = *(const uint4 *)(wt + (size_t)c * K);
                    const T *wv = (const T *)&wraw;
                    for (int j = 0; j < 8; j++) acc[j] += xv * to_acc<float, T>(wv[j]);
                }
            }
        }
        conv8_epilogue<T>(p.g, p.res, p.y, (size_t)i * 8, acc); /* (pixel, k0) is i * 8: K / 8 vectors a pixel */
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

template <typename T> __global__ void rownorm_kernel(const __grid_constant__ knc_rownorm p) {
    using C = acc_t<T>;
    __shared__ C sh[32];
    const int64_t row = blockIdx.x;
    const T *x = (const T *)p.x + row * p.len;
    const T *r = p.res ? (const T *)p.res + row * p.len : nullptr;
    T *y = (T *)p.y + row * p.len;
    // X (+ the fused residual), in the accumulation type
    auto xv = [&](int64_t j) -> C { return r ? (C)ld<T>(x, j) + (C)ld<T>(r, j) : (C)ld<T>(x, j); };
    C sum = 0;
    for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) sum += xv(j);
    C mean = block_reduce<C>(sum, 0, sh) / (C)p.len;
    C sq = 0;
    for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) { C d = xv(j) - mean; sq += d * d; }
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
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) st<T>(y, j, (xv(j) - mean) * rstd * g + b);
    } else {
        for (int64_t j = threadIdx.x; j < p.len; j += blockDim.x) {
            C g = p.gamma ? (C)ldf(p.gamma, p.param_dtype, p.gamma_scalar ? 0 : j) : (C)1;
            C b = p.beta ? (C)ldf(p.beta, p.param_dtype, p.beta_scalar ? 0 : j) : (C)0;
            st<T>(y, j, (xv(j) - mean) * rstd * g + b);
        }
    }
}

template <typename T> __global__ void __launch_bounds__(256) batchnorm_kernel(const __grid_constant__ knc_batchnorm p, int64_t n) {
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

// Whether spatial dim d's window arithmetic stays inside int32 (the vector kernel's index type).
static bool pool_fits_int32(const knc_pool *p, int d) {
    const int64_t lim = INT32_MAX / 4;
    return p->in_sp[d] + p->pad_begin[d] + p->pad_end[d] < lim && p->k[d] * p->dil[d] < lim &&
           p->out_sp[d] * p->stride[d] < lim && p->pad_begin[d] < lim;
}

extern "C" cudaError_t knc_pool_launch(const knc_pool *p, cudaStream_t s) {
    int64_t n = p->nc * p->out_sp[0] * p->out_sp[1] * p->out_sp[2];
    if (n <= 0) return cudaSuccess;
    if (p->nhwc && (p->indices || p->c <= 0 || p->nc % p->c)) return cudaErrorInvalidValue;
    if (!p->is_max && (p->indices || p->col_major)) return cudaErrorInvalidValue;
    unsigned g = grid_for(n, 256);
    // a fixed 3x3 window without dilation (ResNet's pools): the unrolled kernels' form
    const bool k3 = p->k[1] == 3 && p->k[2] == 3 && p->dil[1] == 1 && p->dil[2] == 1;
    // the vector path: NHWC 2-D f16/bf16 (channels a multiple of 8) or f32 (of 4), 16-byte
    // aligned, 32-bit sizes
    int64_t in_n = p->nc * p->in_sp[0] * p->in_sp[1] * p->in_sp[2];
    int vw = p->dtype == KILN_F16 || p->dtype == KILN_BF16 ? 8 : p->dtype == KILN_F32 ? 4 : 0;
    if (p->nhwc && p->nsp == 2 && vw && p->c % vw == 0 &&
        !p->indices && in_n < INT32_MAX && n < INT32_MAX && ((uintptr_t)p->in | (uintptr_t)p->out) % 16 == 0 &&
        pool_fits_int32(p, 1) && pool_fits_int32(p, 2)) {
        int nv = (int)(n / vw);
        if (p->is_max && vw == 8) {
            unsigned gm = grid_for(nv, 128);
#define KNC_MAX_X2(T2) (k3 ? maxpool2d_nhwc_x2<T2, 3><<<gm, 128, 0, s>>>(*p, nv) : maxpool2d_nhwc_x2<T2, 0><<<gm, 128, 0, s>>>(*p, nv))
            if (p->dtype == KILN_F16) KNC_MAX_X2(__half2);
            else KNC_MAX_X2(__nv_bfloat162);
#undef KNC_MAX_X2
            return cudaGetLastError();
        }
        // A small 3x3 pool (ResNet's at batch 1: 25k vectors) waits on memory latency: the
        // unrolled window and 128 threads a block, so that every SM gets work. A large one is
        // bound by bandwidth, where that form measured 1 % slower (ResNet-18 batch 256, H100).
        const bool small3 = nv < 65536 && k3;
        const int th = small3 ? 128 : 256;
        unsigned gv = grid_for(nv, th);
#define KNC_POOL_VEC(T) (small3 ? pool2d_nhwc_vec<T, 3><<<gv, th, 0, s>>>(*p, nv) : pool2d_nhwc_vec<T, 0><<<gv, th, 0, s>>>(*p, nv))
        if (p->dtype == KILN_F16) KNC_POOL_VEC(__half);
        else if (p->dtype == KILN_BF16) KNC_POOL_VEC(__nv_bfloat16);
        else KNC_POOL_VEC(float);
#undef KNC_POOL_VEC
        return cudaGetLastError();
    }
    // NCHW 2-D f32/f16/bf16 without indices: pool2d_nchw (the generic kernel is the rest)
    const bool fl = p->dtype == KILN_F32 || p->dtype == KILN_F16 || p->dtype == KILN_BF16;
    if (!p->nhwc && p->nsp == 2 && fl && !p->indices && in_n < INT32_MAX && n < INT32_MAX && pool_fits_int32(p, 1) &&
        pool_fits_int32(p, 2)) {
#define KNC_POOL_NCHW(T) (k3 ? pool2d_nchw<T, 3><<<g, 256, 0, s>>>(*p, (int)n) : pool2d_nchw<T, 0><<<g, 256, 0, s>>>(*p, (int)n))
        if (p->dtype == KILN_F16) KNC_POOL_NCHW(__half);
        else if (p->dtype == KILN_BF16) KNC_POOL_NCHW(__nv_bfloat16);
        else KNC_POOL_NCHW(float);
#undef KNC_POOL_NCHW
        return cudaGetLastError();
    }
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

extern "C" cudaError_t knc_dwconv_launch(const knc_dwconv *p, cudaStream_t s) {
    int64_t total = (int64_t)p->g.n * p->g.oh * p->g.ow * (p->g.c / 8);
    if (total <= 0) return cudaSuccess;
    if (p->g.c % 8 || total > INT32_MAX || (int64_t)p->g.n * p->g.h * p->g.w * p->g.c > INT32_MAX ||
        ((uintptr_t)p->x | (uintptr_t)p->y | (uintptr_t)p->res) % 16)
        return cudaErrorInvalidValue;
    if (p->g.dtype == KILN_F16) return dwconv_go<__half>(p, (int)total, s);
    if (p->g.dtype == KILN_BF16) return dwconv_go<__nv_bfloat16>(p, (int)total, s);
    return cudaErrorInvalidValue;
}

extern "C" size_t knc_dconv_smem(const knc_dconv *p) {
    return (size_t)p->k * p->g.r * p->g.s * p->g.c * 2; /* f16 and bf16 */
}

extern "C" cudaError_t knc_dconv_launch(const knc_dconv *p, cudaStream_t s) {
    int64_t total = (int64_t)p->g.n * p->g.oh * p->g.ow * (p->k / 8);
    if (total <= 0) return cudaSuccess;
    size_t smem = knc_dconv_smem(p);
    if (p->k % 8 || p->g.c < 1 || total > INT32_MAX || (int64_t)p->g.n * p->g.h * p->g.w * p->g.c > INT32_MAX ||
        smem > 48 * 1024 || ((uintptr_t)p->y | (uintptr_t)p->res) % 16)
        return cudaErrorInvalidValue;
    unsigned g = grid_for(total, 256);
    if (p->g.dtype == KILN_F16) dconv_nhwc_v8<__half><<<g, 256, smem, s>>>(*p, (int)total);
    else if (p->g.dtype == KILN_BF16) dconv_nhwc_v8<__nv_bfloat16><<<g, 256, smem, s>>>(*p, (int)total);
    else return cudaErrorInvalidValue;
    return cudaGetLastError();
}
