// KilnAttention on CUDA: one kernel for softmax(alpha Q K^T) V, the scores never in memory.
// A block takes one batch entry n and 8 query rows (4 warps x 2 rows) and walks the keys in tiles
// of 32: the tile of K (padded rows, so lane-per-key reads do not share banks) and of V go to
// shared memory as float; each lane scores one key of the tile against the warp's query row (held
// in shared memory, alpha applied), the warp updates the row's running max and sum (the online
// softmax) and each lane accumulates up to 4 of the Dv output columns. Float arithmetic for every
// element type. Dk, Dv <= 128 (the pass asks the backend, which refuses larger heads).
#include "knc_common.cuh"

using namespace knc;

namespace {

constexpr int kWarps = 4, kRows = 2, kTile = 32, kMaxD = KNC_ATTN_MAX_D, kCols = kMaxD / 32;

__device__ __forceinline__ int64_t at(const knc_attn_operand &o, int64_t n, int64_t l, int64_t j) {
    return (n / o.n_inner) * o.s_outer + (n % o.n_inner) * o.s_inner + l * o.s_l + j * o.s_d;
}

template <typename T> __global__ void __launch_bounds__(kWarps * 32) attention_kernel(const __grid_constant__ knc_attention p, int64_t qblocks) {
    extern __shared__ float smem[];
    const int dk = p.dk, dv = p.dv, kstride = dk + 1;
    float *ks = smem;                        // [kTile][dk + 1]
    float *vs = ks + kTile * kstride;        // [kTile][dv]
    float *qs = vs + kTile * dv;             // [kWarps * kRows][dk]
    const int64_t n = blockIdx.x / qblocks, q0 = (blockIdx.x % qblocks) * (kWarps * kRows);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const T *Q = (const T *)p.q.p, *K = (const T *)p.k.p, *V = (const T *)p.v.p;

    int64_t row[kRows];
    for (int r = 0; r < kRows; r++) {
        row[r] = q0 + warp * kRows + r;
        float *qr = qs + (warp * kRows + r) * dk;
        for (int j = lane; j < dk; j += 32)
            qr[j] = row[r] < p.lq ? to_acc<float, T>(Q[at(p.q, n, row[r], j)]) * p.alpha : 0.0f;
    }
    float m[kRows], l[kRows], acc[kRows][kCols];
    for (int r = 0; r < kRows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int c = 0; c < kCols; c++) acc[r][c] = 0.0f;
    }
    for (int64_t t0 = 0; t0 < p.lk; t0 += kTile) {
        const int valid = (int)(p.lk - t0 < kTile ? p.lk - t0 : kTile);
        __syncthreads(); // the previous tile is consumed (and qs written, the first time)
        for (int e = threadIdx.x; e < kTile * dk; e += blockDim.x) {
            int key = e / dk, j = e % dk;
            ks[key * kstride + j] = key < valid ? to_acc<float, T>(K[at(p.k, n, t0 + key, j)]) : 0.0f;
        }
        for (int e = threadIdx.x; e < kTile * dv; e += blockDim.x) {
            int key = e / dv, j = e % dv;
            vs[key * dv + j] = key < valid ? to_acc<float, T>(V[at(p.v, n, t0 + key, j)]) : 0.0f;
        }
        __syncthreads();
        for (int r = 0; r < kRows; r++) {
            if (row[r] >= p.lq) continue; // warp-uniform
            const float *qr = qs + (warp * kRows + r) * dk, *kr = ks + lane * kstride;
            float s = 0.0f;
            for (int j = 0; j < dk; j++) s = fmaf(qr[j], kr[j], s);
            if (lane >= valid) s = -INFINITY;
            float tmax = s;
            for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
            const float mn = fmaxf(m[r], tmax);
            const float corr = __expf(m[r] - mn); // 0 on the first tile (m = -inf)
            const float pr = lane < valid ? __expf(s - mn) : 0.0f;
            float psum = pr;
            for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
            l[r] = l[r] * corr + psum;
            m[r] = mn;
            for (int c = 0; c < kCols; c++) acc[r][c] *= corr;
            for (int key = 0; key < valid; key++) {
                const float pk = __shfl_sync(0xffffffffu, pr, key);
                const float *vr = vs + key * dv;
                for (int c = 0; c < kCols; c++) {
                    int j = lane + 32 * c;
                    if (j < dv) acc[r][c] = fmaf(pk, vr[j], acc[r][c]);
                }
            }
        }
    }
    const int64_t ybase = (n / p.y_n_inner) * p.y_s_outer + (n % p.y_n_inner) * p.y_s_inner;
    for (int r = 0; r < kRows; r++) {
        if (row[r] >= p.lq) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (int c = 0; c < kCols; c++) {
            int j = lane + 32 * c;
            if (j < dv) ((T *)p.y)[ybase + row[r] * p.y_s_l + j * p.y_s_d] = from_acc<T, float>(acc[r][c] * inv);
        }
    }
}

} // namespace

extern "C" cudaError_t knc_attention_launch(const knc_attention *p, cudaStream_t s) {
    if (p->n <= 0 || p->lq <= 0 || p->dv <= 0) return cudaSuccess;
    if (p->dk <= 0 || p->dk > kMaxD || p->dv > kMaxD || p->q.n_inner <= 0 || p->k.n_inner <= 0 || p->v.n_inner <= 0 || p->y_n_inner <= 0)
        return cudaErrorInvalidValue;
    const int64_t qblocks = (p->lq + kWarps * kRows - 1) / (kWarps * kRows), blocks = p->n * qblocks;
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    const size_t smem = sizeof(float) * ((size_t)kTile * (p->dk + 1) + (size_t)kTile * p->dv + (size_t)kWarps * kRows * p->dk);
    const dim3 grid((unsigned)blocks), block(kWarps * 32);
    switch (p->dtype) {
    case KILN_F32: attention_kernel<float><<<grid, block, smem, s>>>(*p, qblocks); break;
    case KILN_F16: attention_kernel<__half><<<grid, block, smem, s>>>(*p, qblocks); break;
    case KILN_BF16: attention_kernel<__nv_bfloat16><<<grid, block, smem, s>>>(*p, qblocks); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
