// kiln's implicit-GEMM convolution (knc_igemm, cuda_kernels.h): NHWC f16/bf16 on tensor cores.
//
// Why: at batch 1, ResNet's 3x3 layers on 7x7 and 14x14 pixels are GEMMs of 49 or 196 rows by
// 256-512 columns over a reduction of 2304-4608. A 64x64 output tile per block gives 8-16 blocks
// for 132 SMs, and cuDNN 9.19's engines for them (every knob tried: tile size, CGA shape,
// split-K slices) took 11 us for the 7x7 layers, a GEMM of 0.23 GFLOP. Here the reduction is
// split over the blocks of one thread-block cluster (up to 16), which add their fp32 partial
// tiles through distributed shared memory in a fixed order: no workspace, no atomics, the same
// bits in every run.
//
// A block: 128 threads (2 x 2 warps of 32 x 32), a 64 x 64 tile of (pixel, output channel), the
// reduction in steps of 32 (r, s, c) through a 4-stage cp.async pipeline (16-byte copies; a copy
// outside the image or past the reduction is zero-filled), mma.sync m16n8k16 with fp32
// accumulators. Reduction index k = (r * S + s) * C + c, so that W (KRSC) rows are contiguous and
// an 8-channel chunk of X never straddles two taps (C % 8 == 0). Then each block of the cluster
// sums its share of the tile's rows over every block's partial and applies bias, residual and
// activation.
#include "knc_common.cuh"

#include <cooperative_groups.h>

namespace cg = cooperative_groups;
using namespace knc;

namespace {

constexpr int BM = 64, BN = 64, BK = 32, STAGES = 4, THREADS = 128;
constexpr int LDS = BK + 8;                  // halves per shared row: 80 bytes, fragment reads conflict-free
constexpr int CPR = BK / 8;                  // 16-byte chunks per row of a stage
constexpr int LOADS = BM * CPR / THREADS;    // chunks of A (and of B) per thread and stage
constexpr int STAGE = (BM + BN) * LDS;       // halves per pipeline stage
constexpr int PLD = BN + 4;                  // floats per row of the partial tile
constexpr int SMEM_BYTES = STAGES * STAGE * 2;
static_assert(BM * PLD * 4 <= SMEM_BYTES, "the partial tile reuses the pipeline's shared memory");
static_assert(BM == BN && THREADS % CPR == 0, "every thread copies one chunk column of A and B");

template <typename T> __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], const uint32_t b[2]);
template <> __device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16 bytes global -> shared; with ok false nothing is read and the destination is zeroed.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

template <typename T> __device__ __forceinline__ float2 load2(const T *p) {
    if constexpr (std::is_same<T, __half>::value) return __half22float2(*(const __half2 *)p);
    else return __bfloat1622float2(*(const __nv_bfloat162 *)p);
}
template <typename T> __device__ __forceinline__ void store2(T *p, float a, float b) {
    if constexpr (std::is_same<T, __half>::value) *(__half2 *)p = __floats2half2_rn(a, b);
    else *(__nv_bfloat162 *)p = __floats2bfloat162_rn(a, b);
}

template <typename T>
__global__ void __launch_bounds__(THREADS) igemm_kernel(const __grid_constant__ knc_igemm p, int m_tiles, int k_tiles) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *smem = reinterpret_cast<T *>(smem_raw);
    cg::cluster_group cluster = cg::this_cluster();
    const int S = p.splits, split = (int)cluster.block_rank();
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int M = p.g.n * p.g.oh * p.g.ow, K = p.k, C = p.g.c, R = p.g.r, SW = p.g.s, H = p.g.h, W = p.g.w;
    const int kred = R * SW * C;
    const int m0 = (blockIdx.x % m_tiles) * BM, n0 = (blockIdx.x / m_tiles) * BN;
    const int per = (k_tiles + S - 1) / S, kt0 = split * per;
    const int nk = k_tiles - kt0 < per ? (k_tiles - kt0 > 0 ? k_tiles - kt0 : 0) : per;
    const T *X = (const T *)p.x, *Wt = (const T *)p.w;

    // this thread's A rows (pixels) and B rows (output channels) of every stage
    int a_base[LOADS], a_ih[LOADS], a_iw[LOADS], b_row[LOADS];
    bool a_ok[LOADS], b_ok[LOADS];
#pragma unroll
    for (int i = 0; i < LOADS; i++) {
        const int row = (tid + THREADS * i) / CPR, m = m0 + row, n = n0 + row;
        a_ok[i] = m < M;
        const int mm = a_ok[i] ? m : 0, ow = mm % p.g.ow, oh = (mm / p.g.ow) % p.g.oh, b = mm / (p.g.ow * p.g.oh);
        a_base[i] = b * H * W;
        a_ih[i] = oh * p.g.stride[0] - p.g.pad[0];
        a_iw[i] = ow * p.g.stride[1] - p.g.pad[1];
        b_ok[i] = n < K;
        b_row[i] = b_ok[i] ? n : 0;
    }
    // the (r, s, c) of this thread's chunk in the next stage to load: stages go in order, so
    // they advance by BK without a division
    const int kc0 = (tid % CPR) * 8; // the same chunk column for all of the thread's rows
    int nc, ns, nr;
    {
        const int kk = kt0 * BK + kc0;
        nc = kk % C;
        ns = (kk / C) % SW;
        nr = kk / C / SW;
    }
    auto load_stage = [&](int stage, int kt) {
        T *As = smem + stage * STAGE, *Bs = As + BM * LDS;
        const int kk = kt * BK + kc0, c = nc, sx = ns, rx = nr;
        const bool in_k = kk < kred;
        nc += BK;
        while (nc >= C) {
            nc -= C;
            if (++ns == SW) {
                ns = 0;
                nr++;
            }
        }
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            const int q = tid + THREADS * i, row = q / CPR, kc = kc0;
            const int ih = a_ih[i] + rx * p.g.dil[0], iw = a_iw[i] + sx * p.g.dil[1];
            const bool ok = a_ok[i] && in_k && ih >= 0 && ih < H && iw >= 0 && iw < W;
            cp_async16(As + row * LDS + kc, ok ? X + ((size_t)(a_base[i] + ih * W + iw) * C + c) : X, ok);
            const bool okb = b_ok[i] && in_k;
            cp_async16(Bs + row * LDS + kc, okb ? Wt + ((size_t)b_row[i] * kred + kk) : Wt, okb);
        }
    };

#pragma unroll
    for (int st = 0; st < STAGES - 1; st++) {
        if (st < nk) load_stage(st, kt0 + st);
        cp_async_commit();
    }
    float acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
    for (int i = 0; i < nk; i++) {
        cp_async_wait<STAGES - 2>(); // step i's copies are done (this thread's) ...
        __syncthreads();             // ... and everyone's; the stage refilled next was read in step i - 1
        const int nxt = i + STAGES - 1;
        if (nxt < nk) load_stage(nxt % STAGES, kt0 + nxt);
        cp_async_commit();
        const T *As = smem + (i % STAGES) * STAGE, *Bs = As + BM * LDS;
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            uint32_t af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const T *a0 = As + (wm + mi * 16 + g) * LDS + ks + 2 * t;
                af[mi][0] = *(const uint32_t *)a0;
                af[mi][1] = *(const uint32_t *)(a0 + 8 * LDS);
                af[mi][2] = *(const uint32_t *)(a0 + 8);
                af[mi][3] = *(const uint32_t *)(a0 + 8 * LDS + 8);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const T *b0 = Bs + (wn + ni * 8 + g) * LDS + ks + 2 * t;
                bf[ni][0] = *(const uint32_t *)b0;
                bf[ni][1] = *(const uint32_t *)(b0 + 8);
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma16816<T>(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    cp_async_wait<0>();
    __syncthreads(); // the pipeline's shared memory becomes the partial tile

    float *part = reinterpret_cast<float *>(smem);
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            const int row = wm + mi * 16 + g, col = wn + ni * 8 + 2 * t;
            *(float2 *)(part + row * PLD + col) = make_float2(acc[mi][ni][0], acc[mi][ni][1]);
            *(float2 *)(part + (row + 8) * PLD + col) = make_float2(acc[mi][ni][2], acc[mi][ni][3]);
        }
    cluster.sync(); // every block's partial is in its shared memory

    // this block's rows of the tile: the sum over the cluster's partials (in rank order), then the epilogue
    const int rows = BM / S, r0 = split * rows;
    const T *bias = (const T *)p.bias, *res = (const T *)p.res;
    T *Y = (T *)p.y;
    for (int e = tid; e < rows * (BN / 2); e += THREADS) {
        const int rr = r0 + e / (BN / 2), cc = (e % (BN / 2)) * 2, m = m0 + rr, n = n0 + cc;
        if (m >= M || n >= K) continue;
        // every block's value read before the first is added (one remote read at a time cost
        // about as much as the reduction steps themselves), then summed in rank order
        float2 v[16];
#pragma unroll
        for (int q = 0; q < 16; q++)
            if (q < S) v[q] = *(const float2 *)(cluster.map_shared_rank(part, q) + rr * PLD + cc);
        float v0 = 0.0f, v1 = 0.0f;
#pragma unroll
        for (int q = 0; q < 16; q++)
            if (q < S) {
                v0 += v[q].x;
                v1 += v[q].y;
            }
        if (bias) {
            const float2 b = load2<T>(bias + n);
            v0 += b.x;
            v1 += b.y;
        }
        const size_t o = (size_t)m * K + n;
        if (res) {
            const float2 r = load2<T>(res + o);
            v0 += r.x;
            v1 += r.y;
        }
        store2<T>(Y + o, act_apply<float>(p.g.act, v0, p.g.alpha, p.g.beta), act_apply<float>(p.g.act, v1, p.g.alpha, p.g.beta));
    }
    cluster.sync(); // no block leaves while another still reads its shared memory
}

} // namespace

extern "C" int knc_igemm_splits(const knc_igemm *p, int sms) {
    const int64_t M = (int64_t)p->g.n * p->g.oh * p->g.ow, tiles = ((M + BM - 1) / BM) * ((p->k + BN - 1) / BN);
    const int64_t k_tiles = ((int64_t)p->g.r * p->g.s * p->g.c + BK - 1) / BK;
    // Splits while the blocks stay within about 1.6 per SM and each keeps 4 reduction steps. On
    // an H100 (scratch runs of this kernel at every split, batch 1 unless named): ResNet's 7x7x512
    // layer took 47 us unsplit and 8.6 us 16-way (cuDNN 11); 14x14x256 6.9 us 8-way (16-way
    // 10.9); 56x56x64 7.8 us 4-way; 7x7x512 at batch 16 34 us 2-way (unsplit 50).
    int s = 1;
    while (s < 16 && tiles * s * 2 * 5 <= (int64_t)sms * 8 && k_tiles / (s * 2) >= 4) s *= 2;
    return s;
}

extern "C" cudaError_t knc_igemm_launch(const knc_igemm *p, cudaStream_t s) {
    const int64_t M = (int64_t)p->g.n * p->g.oh * p->g.ow;
    if (M <= 0 || p->k <= 0) return cudaSuccess;
    const int S = p->splits;
    if ((p->g.dtype != KILN_F16 && p->g.dtype != KILN_BF16) || p->g.c <= 0 || p->g.c % 8 || p->k % 8 ||
        (S != 1 && S != 2 && S != 4 && S != 8 && S != 16) || p->g.r <= 0 || p->g.s <= 0)
        return cudaErrorInvalidValue;
    const int64_t kred = (int64_t)p->g.r * p->g.s * p->g.c, x_elems = (int64_t)p->g.n * p->g.h * p->g.w * p->g.c;
    if (M * p->k > INT32_MAX || x_elems > INT32_MAX || (int64_t)p->k * kred > INT32_MAX) return cudaErrorInvalidValue;
    if (((uintptr_t)p->x | (uintptr_t)p->w) % 16 || ((uintptr_t)p->y | (uintptr_t)p->bias | (uintptr_t)p->res) % 4)
        return cudaErrorInvalidValue;
    const int m_tiles = (int)((M + BM - 1) / BM), n_tiles = (p->k + BN - 1) / BN, k_tiles = (int)((kred + BK - 1) / BK);
    const int64_t blocks = (int64_t)m_tiles * n_tiles;
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks, 1, (unsigned)S);
    cfg.blockDim = dim3(THREADS, 1, 1);
    cfg.dynamicSmemBytes = SMEM_BYTES;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = (unsigned)S;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    // more than 48 KB of shared memory and clusters of 16 (beyond the portable 8) are allowed
    // once per kernel, at its first launch (a warm-up or tactic run, outside any capture)
    static int allowed[2];
    const int bf = p->g.dtype == KILN_BF16;
    if (!__atomic_load_n(&allowed[bf], __ATOMIC_ACQUIRE)) {
        const void *fn = bf ? (const void *)igemm_kernel<__nv_bfloat16> : (const void *)igemm_kernel<__half>;
        cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES);
        if (e == cudaSuccess) e = cudaFuncSetAttribute(fn, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
        if (e != cudaSuccess) return e;
        __atomic_store_n(&allowed[bf], 1, __ATOMIC_RELEASE);
    }
    return bf ? cudaLaunchKernelEx(&cfg, igemm_kernel<__nv_bfloat16>, *p, m_tiles, k_tiles)
              : cudaLaunchKernelEx(&cfg, igemm_kernel<__half>, *p, m_tiles, k_tiles);
}
