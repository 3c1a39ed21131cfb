// KilnAttention on CUDA: one kernel for softmax(alpha Q K^T) V, the scores never in memory.
// A block takes one batch entry n and 4 query rows (a warp each). The keys go through shared
// memory in chunks as large as 40 KB allows (all of them for short sequences: one load, two
// barriers), as float, K's rows padded so that lane-per-key reads do not share banks. Per 32 keys
// each lane scores one key against the warp's query row (in shared memory, alpha applied), the
// warp updates the row's running max and sum (the online softmax) and each lane accumulates up
// to 4 of the Dv output columns. Operand addresses: the batch entry's base once per block, then
// row and column strides (no divisions per element). Float arithmetic for every element type.
// Dk, Dv <= 128 (the pass asks the backend, which refuses larger heads).
#include "knc_common.cuh"

using namespace knc;

namespace {

constexpr int kWarps = 4, kTile = 32, kMaxD = KNC_ATTN_MAX_D, kCols = kMaxD / 32;
constexpr size_t kSmemBudget = 40 * 1024;

__device__ __forceinline__ int64_t base_of(const knc_attn_operand &o, int64_t n) {
    return (n / o.n_inner) * o.s_outer + (n % o.n_inner) * o.s_inner;
}

template <typename T, int COLS>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(const __grid_constant__ knc_attention p, int64_t qblocks, int chunk) {
    extern __shared__ float smem[];
    const int dk = p.dk, dv = p.dv, kstride = dk + 1;
    float *ks = smem;                  // [chunk][dk + 1]
    float *vs = ks + chunk * kstride;  // [chunk][dv]
    float *qs = vs + chunk * dv;       // [kWarps][dk]
    const int64_t n = blockIdx.x / qblocks;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row = (blockIdx.x % qblocks) * kWarps + warp;
    const bool active = row < p.lq; // warp-uniform
    const T *Q = (const T *)p.q.p + base_of(p.q, n), *K = (const T *)p.k.p + base_of(p.k, n);
    const T *V = (const T *)p.v.p + base_of(p.v, n);

    float *qr = qs + warp * dk;
    for (int j = lane; j < dk; j += 32) qr[j] = active ? to_acc<float, T>(Q[row * p.q.s_l + j * p.q.s_d]) * p.alpha : 0.0f;
    float m = -INFINITY, l = 0.0f, acc[COLS];
#pragma unroll
    for (int c = 0; c < COLS; c++) acc[c] = 0.0f;

    for (int64_t c0 = 0; c0 < p.lk; c0 += chunk) {
        const int cnt = (int)(p.lk - c0 < chunk ? p.lk - c0 : chunk);
        __syncthreads(); // the previous chunk is consumed
        for (int key = warp; key < cnt; key += kWarps) {
            const T *kr = K + (c0 + key) * p.k.s_l, *vr = V + (c0 + key) * p.v.s_l;
            for (int j = lane; j < dk; j += 32) ks[key * kstride + j] = to_acc<float, T>(kr[j * p.k.s_d]);
            for (int j = lane; j < dv; j += 32) vs[key * dv + j] = to_acc<float, T>(vr[j * p.v.s_d]);
        }
        __syncthreads();
        if (!active) continue;
        for (int t0 = 0; t0 < cnt; t0 += kTile) {
            const int valid = cnt - t0 < kTile ? cnt - t0 : kTile;
            const float *kr = ks + (t0 + lane) * kstride;
            float s = -INFINITY;
            if (lane < valid) {
                float a0 = 0.0f, a1 = 0.0f;
                int j = 0;
                for (; j + 1 < dk; j += 2) {
                    a0 = fmaf(qr[j], kr[j], a0);
                    a1 = fmaf(qr[j + 1], kr[j + 1], a1);
                }
                if (j < dk) a0 = fmaf(qr[j], kr[j], a0);
                s = a0 + a1;
            }
            float tmax = s;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
            const float mn = fmaxf(m, tmax);
            const float corr = __expf(m - mn); // 0 on the first tile (m = -inf)
            const float pr = lane < valid ? __expf(s - mn) : 0.0f;
            float psum = pr;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
            l = l * corr + psum;
            m = mn;
#pragma unroll
            for (int c = 0; c < COLS; c++) acc[c] *= corr;
            const float *vt = vs + t0 * dv + lane;
#pragma unroll 8
            for (int key = 0; key < kTile; key++) {
                const float pk = __shfl_sync(0xffffffffu, pr, key); // 0 past `valid`
                if (key < valid) {
#pragma unroll
                    for (int c = 0; c < COLS; c++)
                        if (lane + 32 * c < dv) acc[c] = fmaf(pk, vt[key * dv + 32 * c], acc[c]);
                }
            }
        }
    }
    if (!active) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    T *Y = (T *)p.y + (n / p.y_n_inner) * p.y_s_outer + (n % p.y_n_inner) * p.y_s_inner + row * p.y_s_l;
#pragma unroll
    for (int c = 0; c < COLS; c++) {
        const int j = lane + 32 * c;
        if (j < dv) Y[j * p.y_s_d] = from_acc<T, float>(acc[c] * inv);
    }
}

template <typename T> cudaError_t launch(const knc_attention *p, cudaStream_t s) {
    const int64_t qblocks = (p->lq + kWarps - 1) / kWarps, blocks = p->n * qblocks;
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    // keys per chunk: all of them when they fit the budget, else a multiple of 32 that does
    const size_t per_key = sizeof(float) * (size_t)(p->dk + 1 + p->dv), fixed = sizeof(float) * (size_t)kWarps * p->dk;
    int64_t fit = (int64_t)((kSmemBudget - fixed) / per_key) / kTile * kTile;
    int64_t want = (p->lk + kTile - 1) / kTile * kTile;
    const int chunk = (int)(want < fit ? (want > 0 ? want : kTile) : fit);
    const size_t smem = fixed + per_key * (size_t)chunk;
    const int cols = (p->dv + 31) / 32;
    const dim3 grid((unsigned)blocks), block(kWarps * 32);
    switch (cols) {
    case 1: attention_kernel<T, 1><<<grid, block, smem, s>>>(*p, qblocks, chunk); break;
    case 2: attention_kernel<T, 2><<<grid, block, smem, s>>>(*p, qblocks, chunk); break;
    default: attention_kernel<T, kCols><<<grid, block, smem, s>>>(*p, qblocks, chunk); break;
    }
    return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t knc_attention_launch(const knc_attention *p, cudaStream_t s) {
    if (p->n <= 0 || p->lq <= 0 || p->dv <= 0) return cudaSuccess;
    if (p->dk <= 0 || p->dk > kMaxD || p->dv > kMaxD || p->q.n_inner <= 0 || p->k.n_inner <= 0 || p->v.n_inner <= 0 ||
        p->y_n_inner <= 0)
        return cudaErrorInvalidValue;
    switch (p->dtype) {
    case KILN_F32: return launch<float>(p, s);
    case KILN_F16: return launch<__half>(p, s);
    case KILN_BF16: return launch<__nv_bfloat16>(p, s);
    default: return cudaErrorInvalidValue;
    }
}
