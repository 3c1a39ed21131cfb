// KilnAttention on CUDA: one kernel for softmax(alpha Q K^T) V, the scores never in memory. Two
// kernels, both one pass over the keys with an online softmax in float:
//
// - attention_tiled (float operands, Dk and Dv <= 64): register tiles, as an SGEMM does. A block
//   of 128 threads takes BQ query rows of one batch entry; keys and values go through shared
//   memory BK at a time. Thread (tr, tc) = (t / 16, t % 16) scores rows tr + 8 i against keys
//   tc + 16 j of the chunk from 16-byte reads of Q's and K's rows (so each shared read serves
//   several multiply-adds); a row's 16 threads form one half-warp, which reduces the row's max
//   and sum by shuffles and hands the probabilities to the product with V through shared memory
//   that only it touches. Each thread then keeps D / 16 adjacent output columns of its rows.
//
// - attention_kernel (the rest: 16-bit types, heads up to 128): a block takes one batch entry and
//   4 warps of R query rows (R from the number of rows: more rows per block when there are many,
//   so that fewer blocks stage the same keys). The keys go through shared memory in chunks as
//   large as 46 KB allows (all of them for short sequences: one load, two barriers), as float.
//   Per 32 keys each lane scores one key against the warp's query rows (in shared memory, alpha
//   applied; 16-byte reads when Dk % 4 == 0, K's rows padded so the reads spread over the
//   banks), the warp updates each row's running max and sum, and each lane accumulates up to 4
//   of the Dv output columns: with one row per warp reading the tile's probabilities four at a
//   time from shared memory, with more rows taking each by a shuffle (their shared buffer cost
//   more in occupancy than it saved: H100, batch 16).
//
// Operand addresses: the batch entry's base once per block, then row and column strides. Float
// arithmetic for every element type. Dk, Dv <= 128 (the pass asks the backend, which refuses
// larger heads).
#include "knc_common.cuh"

using namespace knc;

namespace {

constexpr int kWarps = 4, kTile = 32, kMaxD = KNC_ATTN_MAX_D, kCols = kMaxD / 32;
constexpr size_t kSmemBudget = 46 * 1024; // under the 48 KB a launch may take without opting in

// K's rows in shared memory: padded by 4 when 16-byte reads fit (rows 4 banks apart: a
// quarter-warp's reads hit distinct banks), else by 1 (lane-per-key reads in distinct banks).
__host__ __device__ __forceinline__ int kstride_of(int dk) { return (dk & 3) == 0 ? dk + 4 : dk + 1; }

__device__ __forceinline__ int64_t base_of(const knc_attn_operand &o, int64_t n) {
    return (n / o.n_inner) * o.s_outer + (n % o.n_inner) * o.s_inner;
}

// Stages rows [c0, c0 + cnt) of a [L, D] operand (row stride sl, column stride sd) into shared
// memory as float, rows `stride` floats apart: 8 loads per thread in flight before their stores
// (one load at a time left every warp waiting on memory).
template <typename T>
__device__ __forceinline__ void stage(const T *src, int64_t sl, int64_t sd, int64_t c0, int cnt, int d, float *dst, int stride) {
    const int total = cnt * d;
    for (int e0 = threadIdx.x; e0 < total; e0 += blockDim.x * 8) {
        float r[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * blockDim.x;
            if (e < total) {
                const int key = e / d, j = e - key * d;
                r[u] = to_acc<float, T>(src[(c0 + key) * sl + j * sd]);
            }
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * blockDim.x;
            if (e < total) {
                const int key = e / d, j = e - key * d;
                dst[key * stride + j] = r[u];
            }
        }
    }
}

// R query rows per warp: the K and V values read from shared memory serve all R rows.
template <typename T, int COLS, int R>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(const __grid_constant__ knc_attention p, int64_t qblocks, int chunk) {
    extern __shared__ float smem[];
    const int dk = p.dk, dv = p.dv, kstride = kstride_of(dk);
    float *ks = smem;                    // [chunk][kstride]
    float *vs = ks + chunk * kstride;    // [chunk][dv]
    float *pbuf = vs + chunk * dv;       // [kWarps][32] when R == 1: the tile's probabilities (chunk % 32 == 0: aligned)
    float *qs = pbuf + (R == 1 ? kWarps * 32 : 0); // [kWarps][R][dk]
    const int64_t n = blockIdx.x / qblocks;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row0 = ((blockIdx.x % qblocks) * kWarps + warp) * R;
    const int rows = (int)(p.lq - row0 < R ? (p.lq - row0 > 0 ? p.lq - row0 : 0) : R); // warp-uniform
    const T *Q = (const T *)p.q.p + base_of(p.q, n), *K = (const T *)p.k.p + base_of(p.k, n);
    const T *V = (const T *)p.v.p + base_of(p.v, n);

    float *qr = qs + warp * R * dk;
    for (int e = lane; e < R * dk; e += 32) {
        const int r = e / dk, j = e - r * dk;
        qr[e] = r < rows ? to_acc<float, T>(Q[(row0 + r) * p.q.s_l + j * p.q.s_d]) * p.alpha : 0.0f;
    }
    float m[R], l[R], acc[R][COLS];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < COLS; c++) acc[r][c] = 0.0f;
    }

    for (int64_t c0 = 0; c0 < p.lk; c0 += chunk) {
        const int cnt = (int)(p.lk - c0 < chunk ? p.lk - c0 : chunk);
        __syncthreads(); // the previous chunk is consumed (and the query rows written)
        stage<T>(K, p.k.s_l, p.k.s_d, c0, cnt, dk, ks, kstride);
        stage<T>(V, p.v.s_l, p.v.s_d, c0, cnt, dv, vs, dv);
        __syncthreads();
        if (rows == 0) continue;
        for (int t0 = 0; t0 < cnt; t0 += kTile) {
            const int valid = cnt - t0 < kTile ? cnt - t0 : kTile;
            float s[R];
#pragma unroll
            for (int r = 0; r < R; r++) s[r] = 0.0f;
            if (lane < valid) {
                const float *kr = ks + (t0 + lane) * kstride;
                if ((dk & 3) == 0) { // 16-byte reads of K's row and the (broadcast) query rows
                    const float4 *k4 = (const float4 *)kr;
                    for (int j4 = 0; j4 < dk / 4; j4++) {
                        const float4 kv = k4[j4];
#pragma unroll
                        for (int r = 0; r < R; r++) {
                            const float4 q = ((const float4 *)(qr + r * dk))[j4];
                            s[r] = fmaf(q.w, kv.w, fmaf(q.z, kv.z, fmaf(q.y, kv.y, fmaf(q.x, kv.x, s[r]))));
                        }
                    }
                } else {
                    for (int j = 0; j < dk; j++) {
                        const float kv = kr[j];
#pragma unroll
                        for (int r = 0; r < R; r++) s[r] = fmaf(qr[r * dk + j], kv, s[r]);
                    }
                }
            }
            float pr[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                float sr = lane < valid ? s[r] : -INFINITY, tmax = sr;
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
                const float mn = fmaxf(m[r], tmax);
                const float corr = __expf(m[r] - mn); // 0 on the first tile (m = -inf)
                pr[r] = lane < valid ? __expf(sr - mn) : 0.0f;
                float psum = pr[r];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
                l[r] = l[r] * corr + psum;
                m[r] = mn;
#pragma unroll
                for (int c = 0; c < COLS; c++) acc[r][c] *= corr;
            }
            if (R > 1) { // rows share each V read; a shuffle per row and key (no probability buffer)
                const float *vt = vs + t0 * dv + lane;
                for (int key = 0; key < valid; key++) {
                    float v[COLS];
#pragma unroll
                    for (int c = 0; c < COLS; c++) v[c] = lane + 32 * c < dv ? vt[key * dv + 32 * c] : 0.0f;
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const float pk = __shfl_sync(0xffffffffu, pr[r], key);
#pragma unroll
                        for (int c = 0; c < COLS; c++) acc[r][c] = fmaf(pk, v[c], acc[r][c]);
                    }
                }
                continue;
            }
            // one row: the probabilities go through shared memory, four keys per (broadcast) 16-byte read
            float *pw = pbuf + warp * R * 32;
#pragma unroll
            for (int r = 0; r < R; r++) pw[r * 32 + lane] = pr[r];
            __syncwarp();
            const float *vt = vs + t0 * dv + lane;
            int key = 0;
            for (; key + 3 < valid; key += 4) {
                float v[4][COLS];
#pragma unroll
                for (int u = 0; u < 4; u++)
#pragma unroll
                    for (int c = 0; c < COLS; c++) v[u][c] = lane + 32 * c < dv ? vt[(key + u) * dv + 32 * c] : 0.0f;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const float4 p4 = ((const float4 *)(pw + r * 32))[key / 4];
#pragma unroll
                    for (int c = 0; c < COLS; c++)
                        acc[r][c] = fmaf(p4.w, v[3][c], fmaf(p4.z, v[2][c], fmaf(p4.y, v[1][c], fmaf(p4.x, v[0][c], acc[r][c]))));
                }
            }
            for (; key < valid; key++) {
                float v[COLS];
#pragma unroll
                for (int c = 0; c < COLS; c++) v[c] = lane + 32 * c < dv ? vt[key * dv + 32 * c] : 0.0f;
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int c = 0; c < COLS; c++) acc[r][c] = fmaf(pw[r * 32 + key], v[c], acc[r][c]);
            }
            __syncwarp(); // the next tile rewrites pw
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        if (r >= rows) break;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        T *Y = (T *)p.y + (n / p.y_n_inner) * p.y_s_outer + (n % p.y_n_inner) * p.y_s_inner + (row0 + r) * p.y_s_l;
#pragma unroll
        for (int c = 0; c < COLS; c++) {
            const int j = lane + 32 * c;
            if (j < dv) Y[j * p.y_s_d] = from_acc<T, float>(acc[r][c] * inv);
        }
    }
}

template <typename T, int COLS, int R> cudaError_t launch_r(const knc_attention *p, cudaStream_t s) {
    const int64_t qblocks = (p->lq + kWarps * R - 1) / (kWarps * R), blocks = p->n * qblocks;
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    // keys per chunk: all of them when they fit the budget, else a multiple of 32 that does
    const size_t per_key = sizeof(float) * (size_t)(kstride_of(p->dk) + p->dv);
    const size_t fixed = sizeof(float) * (size_t)kWarps * (R * p->dk + (R == 1 ? 32 : 0));
    const int64_t fit = (int64_t)((kSmemBudget - fixed) / per_key) / kTile * kTile;
    const int64_t want = (p->lk + kTile - 1) / kTile * kTile;
    const int chunk = (int)(want < fit ? (want > 0 ? want : kTile) : fit);
    if (chunk < kTile) return cudaErrorInvalidValue;
    attention_kernel<T, COLS, R><<<(unsigned)blocks, kWarps * 32, fixed + per_key * (size_t)chunk, s>>>(*p, qblocks, chunk);
    return cudaGetLastError();
}

// Rows per warp: 1 while that leaves few blocks for the card (short sequences, a small batch),
// more as the rows grow, so that fewer blocks stage the same keys: at most R * Dk <= 256 (the
// query rows' shared memory).
template <typename T, int COLS> cudaError_t launch_cols(const knc_attention *p, cudaStream_t s) {
    const int64_t rows = p->n * p->lq;
    int r = rows >= 8192 ? 8 : rows >= 4096 ? 4 : rows >= 2048 ? 2 : 1;
    while (r > 1 && r * p->dk > 256) r /= 2;
    switch (r) {
    case 8: return launch_r<T, COLS, 8>(p, s);
    case 4: return launch_r<T, COLS, 4>(p, s);
    case 2: return launch_r<T, COLS, 2>(p, s);
    default: return launch_r<T, COLS, 1>(p, s);
    }
}

// ---- attention_tiled ----------------------------------------------------------------------------

constexpr int kTiledThreads = 128;

// Rows [r0, r0 + valid) of a [L, d] float operand (row stride sl, column stride sd) into a
// rows x D tile of shared memory (rows `stride` floats apart), times `scale`; rows past `valid`
// and columns past d are zeros (zero keys and values add nothing; zero rows are not written
// out). 16-byte loads when the rows are dense and 16-byte aligned; up to 8 loads per thread in
// flight before their stores.
template <int D>
__device__ __forceinline__ void stage_tile(const float *src, int64_t sl, int64_t sd, int64_t r0, int valid, int rows, int d,
                                           float *dst, int stride, float scale) {
    const bool vec = sd == 1 && (d & 3) == 0 && (sl & 3) == 0 && ((uintptr_t)(src + r0 * sl) & 15) == 0;
    if (vec) {
        constexpr int W = D / 4; // float4 per tile row
        const int total = rows * W;
        for (int e0 = threadIdx.x; e0 < total; e0 += kTiledThreads * 8) {
            float4 r[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int e = e0 + u * kTiledThreads, row = e / W, j = (e - row * W) * 4;
                r[u] = e < total && row < valid && j < d ? *(const float4 *)(src + (r0 + row) * sl + j) : make_float4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int e = e0 + u * kTiledThreads, row = e / W, j = (e - row * W) * 4;
                if (e < total)
                    *(float4 *)(dst + row * stride + j) = make_float4(r[u].x * scale, r[u].y * scale, r[u].z * scale, r[u].w * scale);
            }
        }
        return;
    }
    const int total = rows * D;
    for (int e0 = threadIdx.x; e0 < total; e0 += kTiledThreads * 8) {
        float r[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * kTiledThreads, row = e / D, j = e - row * D;
            r[u] = e < total && row < valid && j < d ? src[(r0 + row) * sl + j * sd] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int e = e0 + u * kTiledThreads, row = e / D, j = e - row * D;
            if (e < total) dst[row * stride + j] = r[u] * scale;
        }
    }
}

// D: the head dims padded (32 or 64); BQ: query rows per block (16, 32 or 64). BK keys per
// chunk keep the four tiles under the 48 KB of static shared memory. Row strides: Q's and K's
// padded by 4 floats (a quarter-warp's 16-byte reads of 8 K rows hit distinct banks), the
// probabilities' by 16 (the two half-warps of a warp write rows 16 banks apart).
template <int D, int BQ>
__global__ void __launch_bounds__(kTiledThreads) attention_tiled(const __grid_constant__ knc_attention p, int64_t qblocks) {
    constexpr int BK = D == 32 ? 64 : 32, RM = BQ / 8, RN = BK / 16, CN = D / 16;
    constexpr int QS = D + 4, KS = D + 4, PS = BK + 16;
    static_assert(CN == 2 || CN == 4, "D is 32 or 64");
    __shared__ __align__(16) float qs[BQ * QS], ks[BK * KS], vs[BK * D], ps[BQ * PS];
    const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;
    const int64_t n = blockIdx.x / qblocks, q0 = (blockIdx.x % qblocks) * BQ;
    const float *Q = (const float *)p.q.p + base_of(p.q, n), *K = (const float *)p.k.p + base_of(p.k, n);
    const float *V = (const float *)p.v.p + base_of(p.v, n);
    const int qrows = (int)(p.lq - q0 < BQ ? p.lq - q0 : BQ);
    stage_tile<D>(Q, p.q.s_l, p.q.s_d, q0, qrows, BQ, p.dk, qs, QS, p.alpha);

    float m[RM], l[RM], acc[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < CN; c++) acc[i][c] = 0.0f;
    }
    for (int64_t c0 = 0; c0 < p.lk; c0 += BK) {
        const int cnt = (int)(p.lk - c0 < BK ? p.lk - c0 : BK);
        __syncthreads(); // the previous chunk is consumed (and Q staged)
        stage_tile<D>(K, p.k.s_l, p.k.s_d, c0, cnt, BK, p.dk, ks, KS, 1.0f);
        stage_tile<D>(V, p.v.s_l, p.v.s_d, c0, cnt, BK, p.dv, vs, D, 1.0f);
        __syncthreads();
        float s[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; i++)
#pragma unroll
            for (int j = 0; j < RN; j++) s[i][j] = 0.0f;
#pragma unroll
        for (int d = 0; d < D; d += 4) {
            float4 kv[RN];
#pragma unroll
            for (int j = 0; j < RN; j++) kv[j] = *(const float4 *)(ks + (tc + 16 * j) * KS + d);
#pragma unroll
            for (int i = 0; i < RM; i++) {
                const float4 qv = *(const float4 *)(qs + (tr + 8 * i) * QS + d);
#pragma unroll
                for (int j = 0; j < RN; j++)
                    s[i][j] = fmaf(qv.w, kv[j].w, fmaf(qv.z, kv[j].z, fmaf(qv.y, kv[j].y, fmaf(qv.x, kv[j].x, s[i][j]))));
            }
        }
        // the online softmax: a row's 16 threads are one half-warp (xor offsets below 16)
#pragma unroll
        for (int i = 0; i < RM; i++) {
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < RN; j++) {
                if (tc + 16 * j >= cnt) s[i][j] = -INFINITY;
                mx = fmaxf(mx, s[i][j]);
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float mn = fmaxf(m[i], mx); // finite: key 0 of every chunk is there
            const float corr = __expf(m[i] - mn); // 0 on the first chunk (m = -inf)
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < RN; j++) {
                const float e = __expf(s[i][j] - mn); // 0 for the keys past the end
                ps[(tr + 8 * i) * PS + tc + 16 * j] = e;
                sum += e;
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            l[i] = l[i] * corr + sum;
            m[i] = mn;
#pragma unroll
            for (int c = 0; c < CN; c++) acc[i][c] *= corr;
        }
        __syncwarp(); // the half-warp's probability rows are written
        const int kend = (cnt + 3) & ~3; // past cnt the probabilities and values are zeros
        for (int k = 0; k < kend; k += 4) {
            float4 pv[RM];
#pragma unroll
            for (int i = 0; i < RM; i++) pv[i] = *(const float4 *)(ps + (tr + 8 * i) * PS + k);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                float v[CN];
                if constexpr (CN == 4) {
                    const float4 t4 = *(const float4 *)(vs + (k + kk) * D + tc * 4);
                    v[0] = t4.x; v[1] = t4.y; v[2] = t4.z; v[3] = t4.w;
                } else {
                    const float2 t2 = *(const float2 *)(vs + (k + kk) * D + tc * 2);
                    v[0] = t2.x; v[1] = t2.y;
                }
#pragma unroll
                for (int i = 0; i < RM; i++) {
                    const float pk = kk == 0 ? pv[i].x : kk == 1 ? pv[i].y : kk == 2 ? pv[i].z : pv[i].w;
#pragma unroll
                    for (int c = 0; c < CN; c++) acc[i][c] = fmaf(pk, v[c], acc[i][c]);
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < RM; i++) {
        const int64_t row = q0 + tr + 8 * i;
        if (row >= p.lq) break;
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        float *Y = (float *)p.y + (n / p.y_n_inner) * p.y_s_outer + (n % p.y_n_inner) * p.y_s_inner + row * p.y_s_l;
#pragma unroll
        for (int c = 0; c < CN; c++) {
            const int j = tc * CN + c;
            if (j < p.dv) Y[j * p.y_s_d] = acc[i][c] * inv;
        }
    }
}

template <int D, int BQ> cudaError_t launch_tiled_bq(const knc_attention *p, cudaStream_t s) {
    const int64_t qblocks = (p->lq + BQ - 1) / BQ, blocks = p->n * qblocks;
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    attention_tiled<D, BQ><<<(unsigned)blocks, kTiledThreads, 0, s>>>(*p, qblocks);
    return cudaGetLastError();
}

// Query rows per block: 64 (each key and value staged for the most rows) while that still makes
// 256 blocks, about two per SM of an H100; else 32; else 16, so that small batches spread over
// the card.
template <int D> cudaError_t launch_tiled(const knc_attention *p, cudaStream_t s) {
    if (p->n * ((p->lq + 63) / 64) >= 256) return launch_tiled_bq<D, 64>(p, s);
    if (p->n * ((p->lq + 31) / 32) >= 256) return launch_tiled_bq<D, 32>(p, s);
    return launch_tiled_bq<D, 16>(p, s);
}

template <typename T> cudaError_t launch(const knc_attention *p, cudaStream_t s) {
    if (std::is_same<T, float>::value && p->dk <= 64 && p->dv <= 64)
        return p->dk <= 32 && p->dv <= 32 ? launch_tiled<32>(p, s) : launch_tiled<64>(p, s);
    switch ((p->dv + 31) / 32) {
    case 1: return launch_cols<T, 1>(p, s);
    case 2: return launch_cols<T, 2>(p, s);
    default: return launch_cols<T, kCols>(p, s);
    }
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
