// Data-movement kernels: strided copy (Transpose, Slice, Expand, Concat, Split), Tile, Pad,
// Gather, Resize, fills and Range. Movement works on element sizes, so any dtype goes through.
#include "knc_common.cuh"

#include <math.h>

namespace knc {

template <int ES> struct word;
template <> struct word<1> { using type = uint8_t; };
template <> struct word<2> { using type = uint16_t; };
template <> struct word<4> { using type = uint32_t; };
template <> struct word<8> { using type = uint64_t; };

template <typename W, typename I>
__global__ void __launch_bounds__(256) copy_kernel(const __grid_constant__ knc_copy p, int64_t n) {
    const W *src = (const W *)p.src;
    W *dst = (W *)p.dst;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (I)n; i += (I)gridDim.x * blockDim.x) {
        I rem = i;
        int64_t so = 0, d_o = 0;
        for (int d = p.rank - 1; d >= 0; d--) {
            I dim = (I)p.dims[d];
            I idx = rem % dim;
            rem /= dim;
            so += (int64_t)idx * p.src_strides[d];
            d_o += (int64_t)idx * p.dst_strides[d];
        }
        dst[d_o] = src[so];
    }
}

// A batch of 2-D transposes, dst[b][r][k] = src[b][k][r], through 32 x 32 tiles in shared
// memory so that both the reads and the writes are coalesced. The layout changes at NHWC block
// edges and most Transposes reduce to this form; the strided copy above reads with a stride of
// H*W there.
template <typename W> __global__ void __launch_bounds__(256) transpose_tiled(const W *src, W *dst, int64_t R, int64_t K) {
    __shared__ W tile[32][33];
    const int64_t b = blockIdx.z, r0 = (int64_t)blockIdx.x * 32, k0 = (int64_t)blockIdx.y * 32;
    const W *sb = src + b * R * K;
    W *db = dst + b * R * K;
    for (int j = threadIdx.y; j < 32; j += 8) {
        int64_t k = k0 + j, r = r0 + threadIdx.x;
        if (k < K && r < R) tile[j][threadIdx.x] = sb[k * R + r];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += 8) {
        int64_t r = r0 + j, k = k0 + threadIdx.x;
        if (r < R && k < K) db[r * K + k] = tile[threadIdx.x][j];
    }
}

// The same for few columns (K < 8, e.g. the 3 channels of an image going to NHWC): a thread per
// destination row, its K elements read at stride R (coalesced across threads) and written
// together.
template <typename W> __global__ void __launch_bounds__(256) transpose_narrow(const W *src, W *dst, int64_t B, int64_t R, int K) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * R; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = i / R, r = i - b * R;
        const W *sb = src + b * R * K + r;
        W *d = dst + i * K;
        for (int k = 0; k < K; k++) d[k] = sb[(int64_t)k * R];
    }
}

// Whether a (merged) copy is a batch of 2-D transposes: dst contiguous [B, R, K] and src
// contiguous [B, K, R]; sets B, R and K.
static bool as_transpose(const knc_copy &p, int64_t *B, int64_t *R, int64_t *K) {
    if (p.rank != 2 && p.rank != 3) return false;
    int o = p.rank - 2; // the batch dim, when there is one, is dim 0
    int64_t r = p.dims[o], k = p.dims[o + 1], b = o ? p.dims[0] : 1;
    if (p.dst_strides[o + 1] != 1 || p.dst_strides[o] != k || p.src_strides[o] != 1 || p.src_strides[o + 1] != r)
        return false;
    if (o && (p.dst_strides[0] != r * k || p.src_strides[0] != r * k)) return false;
    if (b > 65535 || (k + 31) / 32 > 65535 || (r + 31) / 32 > INT32_MAX) return false;
    *B = b, *R = r, *K = k;
    return true;
}

template <typename W> static cudaError_t copy_go(const knc_copy &p, int64_t n, cudaStream_t s) {
    int64_t B, R, K;
    if (as_transpose(p, &B, &R, &K) && R >= 8 && K >= 8) {
        dim3 grid((unsigned)((R + 31) / 32), (unsigned)((K + 31) / 32), (unsigned)B), block(32, 8);
        transpose_tiled<W><<<grid, block, 0, s>>>((const W *)p.src, (W *)p.dst, R, K);
        return cudaGetLastError();
    }
    if (as_transpose(p, &B, &R, &K) && K < 8) {
        transpose_narrow<W><<<grid_for(B * R, 256), 256, 0, s>>>((const W *)p.src, (W *)p.dst, B, R, (int)K);
        return cudaGetLastError();
    }
    unsigned g = grid_for(n, 256);
    if (n < (int64_t)INT32_MAX) copy_kernel<W, int32_t><<<g, 256, 0, s>>>(p, n);
    else copy_kernel<W, int64_t><<<g, 256, 0, s>>>(p, n);
    return cudaGetLastError();
}

// NCHW -> NHWC of an image with few channels, converting the type and writing zeros after the C
// source channels up to P (a network's input: f32 to f16, 3 channels to 4). A thread per pixel:
// its C values read at stride HW (coalesced across threads), its P values written at once.
template <typename S, typename D, int P>
__global__ void __launch_bounds__(256) to_nhwc_narrow(const S *src, D *dst, int64_t npix, int64_t hw, int c) {
    struct alignas(P * sizeof(D) >= 16 ? 16 : P * sizeof(D)) pix { D v[P]; };
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < npix; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = i / hw, r = i - b * hw;
        const S *sp = src + b * hw * c + r;
        pix o;
#pragma unroll
        for (int k = 0; k < P; k++) o.v[k] = from_acc<D, float>(k < c ? to_acc<float, S>(sp[(int64_t)k * hw]) : 0.0f);
        ((pix *)dst)[i] = o;
    }
}

template <typename S, typename D> static cudaError_t to_nhwc_go(const void *src, void *dst, int64_t npix, int64_t hw, int c, int p, cudaStream_t s) {
    unsigned g = grid_for(npix, 256);
    switch (p) {
    case 4: to_nhwc_narrow<S, D, 4><<<g, 256, 0, s>>>((const S *)src, (D *)dst, npix, hw, c); break;
    case 8: to_nhwc_narrow<S, D, 8><<<g, 256, 0, s>>>((const S *)src, (D *)dst, npix, hw, c); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

template <typename W>
__global__ void __launch_bounds__(256) tile_kernel(const W *in, W *out, int rank, const __grid_constant__ knc_copy dims, int64_t n) {
    // dims.dims: out dims; dims.src_strides: in dims (reused fields)
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, off = 0, mul = 1;
        for (int d = rank - 1; d >= 0; d--) {
            int64_t idx = rem % dims.dims[d];
            rem /= dims.dims[d];
            off += (idx % dims.src_strides[d]) * mul;
            mul *= dims.src_strides[d];
        }
        out[i] = in[off];
    }
}

template <typename T>
__global__ void __launch_bounds__(256) pad_kernel(const __grid_constant__ knc_pad p, int64_t n) {
    const T *in = (const T *)p.in;
    T *out = (T *)p.out;
    T cv = T();
    if (p.mode == KNC_PAD_CONSTANT) {
        if (p.value_ptr) cv = ((const T *)p.value_ptr)[0];
        else cv = from_acc<T, acc_t<T>>((acc_t<T>)p.value);
    }
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, off = 0, mul = 1;
        bool outside = false;
        for (int d = p.rank - 1; d >= 0; d--) {
            int64_t o = rem % p.out_dims[d];
            rem /= p.out_dims[d];
            int64_t len = p.in_dims[d];
            int64_t c = o - p.begin[d];
            if (c < 0 || c >= len) {
                switch (p.mode) {
                case KNC_PAD_CONSTANT: outside = true; break;
                case KNC_PAD_EDGE: c = c < 0 ? 0 : len - 1; break;
                case KNC_PAD_WRAP: c = ((c % len) + len) % len; break;
                default: { // reflect (without repeating the edge)
                    if (len == 1) { c = 0; break; }
                    int64_t period = 2 * (len - 1);
                    c = ((c % period) + period) % period;
                    if (c >= len) c = period - c;
                }
                }
            }
            off += c * mul;
            mul *= len;
        }
        out[i] = outside ? cv : in[off];
    }
}

// One thread per row: c loads of 2 bytes, one 16-byte store.
__global__ void __launch_bounds__(256) pad_channels8_kernel(const uint16_t *in, uint4 *out, int c, int64_t rows) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += (int64_t)gridDim.x * blockDim.x) {
        const uint16_t *src = in + r * c;
        uint32_t v[8];
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = k < c ? src[k] : 0u;
        out[r] = make_uint4(v[0] | v[1] << 16, v[2] | v[3] << 16, v[4] | v[5] << 16, v[6] | v[7] << 16);
    }
}

template <typename W, typename IDX>
__global__ void __launch_bounds__(256) gather_kernel(const W *data, const IDX *idx, W *out, int64_t axis_len,
                                                     int64_t n_idx, int64_t inner, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t in_i = i % inner;
        int64_t t = i / inner;
        int64_t j = t % n_idx;
        int64_t o = t / n_idx;
        int64_t k = (int64_t)idx[j];
        if (k < 0) k += axis_len;
        k = k < 0 ? 0 : k >= axis_len ? axis_len - 1 : k; // out of range: clamped (no device errors)
        out[i] = data[(o * axis_len + k) * inner + in_i];
    }
}

// Input coordinate of output coordinate o along one dim (ONNX Resize).
__device__ __forceinline__ float resize_coord(const knc_resize &p, int d, int64_t o) {
    float scale = p.scales[d];
    float in_len = (float)p.in_dims[d], out_len = (float)p.out_dims[d];
    float x = (float)o;
    switch (p.coord) {
    case KNC_CT_ASYMMETRIC: return x / scale;
    case KNC_CT_ALIGN_CORNERS: { // the reference's width scale * in, not rounded (as on the CPU)
        float w = scale * in_len;
        return w == 1.f ? 0.f : x * (in_len - 1) / (w - 1);
    }
    case KNC_CT_PYTORCH_HALF_PIXEL: return out_len > 1 ? (x + 0.5f) / scale - 0.5f : 0.f;
    case KNC_CT_TF_CROP_AND_RESIZE:
        return out_len > 1 ? p.roi_start[d] * (in_len - 1) + x * (p.roi_end[d] - p.roi_start[d]) * (in_len - 1) / (out_len - 1)
                           : 0.5f * (p.roi_start[d] + p.roi_end[d]) * (in_len - 1);
    case KNC_CT_HALF_PIXEL_SYMMETRIC: {
        float adj = out_len / (scale * in_len);
        float center = in_len / 2;
        float offset = center * (1 - adj);
        return offset + (x + 0.5f) / scale - 0.5f;
    }
    default: return (x + 0.5f) / scale - 0.5f; // half_pixel
    }
}

__device__ __forceinline__ int64_t resize_nearest(const knc_resize &p, float x, int64_t len) {
    float r;
    switch (p.nearest) {
    case KNC_NEAREST_FLOOR: r = floorf(x); break;
    case KNC_NEAREST_CEIL: r = ceilf(x); break;
    case KNC_NEAREST_ROUND_PREFER_CEIL: r = (x - floorf(x) == 0.5f) ? ceilf(x) : rintf(x); break;
    default: r = (x - floorf(x) == 0.5f) ? floorf(x) : rintf(x); break;
    }
    int64_t k = (int64_t)r;
    return k < 0 ? 0 : k >= len ? len - 1 : k;
}

__device__ __forceinline__ float cubic_w(float t, float a) {
    t = fabsf(t);
    if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
}

// One thread per output element. Dims whose size and scale leave coordinates unchanged are
// copied through; the others (at most 3 for linear, 2 for cubic; checked on the host)
// interpolate.
template <typename T> __global__ void __launch_bounds__(256) resize_kernel(const __grid_constant__ knc_resize p, int64_t n) {
    const T *in = (const T *)p.in;
    T *out = (T *)p.out;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i;
        int64_t ocoord[KNC_MAX_RANK];
        for (int d = p.rank - 1; d >= 0; d--) { ocoord[d] = rem % p.out_dims[d]; rem /= p.out_dims[d]; }
        // per dim: up to 4 taps (index, weight)
        int ntap[KNC_MAX_RANK];
        int64_t tidx[KNC_MAX_RANK][4];
        float tw[KNC_MAX_RANK][4];
        bool extrap = false;
        for (int d = 0; d < p.rank; d++) {
            int64_t len = p.in_dims[d];
            bool same = p.in_dims[d] == p.out_dims[d] && p.scales[d] == 1.f && p.coord != KNC_CT_TF_CROP_AND_RESIZE;
            if (same) { ntap[d] = 1; tidx[d][0] = ocoord[d]; tw[d][0] = 1; continue; }
            float x = resize_coord(p, d, ocoord[d]);
            if (p.coord == KNC_CT_TF_CROP_AND_RESIZE && (x < 0 || x > (float)(len - 1))) extrap = true;
            if (p.mode == KNC_RESIZE_NEAREST) {
                ntap[d] = 1; tidx[d][0] = resize_nearest(p, x, len); tw[d][0] = 1;
            } else if (p.mode == KNC_RESIZE_LINEAR) {
                float xc = x < 0 ? 0.f : x > (float)(len - 1) ? (float)(len - 1) : x;
                int64_t x0 = (int64_t)floorf(xc);
                int64_t x1 = x0 + 1 < len ? x0 + 1 : len - 1;
                float f = xc - (float)x0;
                ntap[d] = 2; tidx[d][0] = x0; tidx[d][1] = x1; tw[d][0] = 1 - f; tw[d][1] = f;
            } else {
                float xf = floorf(x);
                float f = x - xf;
                int64_t x0 = (int64_t)xf;
                float wsum = 0;
                for (int t = 0; t < 4; t++) {
                    int64_t k = x0 - 1 + t;
                    float w = cubic_w(f + 1 - t, p.cubic_a);
                    if (p.exclude_outside && (k < 0 || k >= len)) w = 0;
                    tidx[d][t] = k < 0 ? 0 : k >= len ? len - 1 : k;
                    tw[d][t] = w;
                    wsum += w;
                }
                if (p.exclude_outside && wsum != 0)
                    for (int t = 0; t < 4; t++) tw[d][t] /= wsum;
                ntap[d] = 4;
            }
        }
        if (extrap) { out[i] = from_acc<T, acc_t<T>>((acc_t<T>)p.extrapolation); continue; }
        // iterate over the tap combinations
        int total = 1;
        for (int d = 0; d < p.rank; d++) total *= ntap[d];
        acc_t<T> accum = 0;
        for (int c = 0; c < total; c++) {
            int r = c;
            int64_t off = 0, mul = 1;
            float w = 1;
            for (int d = p.rank - 1; d >= 0; d--) {
                int t = r % ntap[d];
                r /= ntap[d];
                off += tidx[d][t] * mul;
                mul *= p.in_dims[d];
                w *= tw[d][t];
            }
            if (p.mode == KNC_RESIZE_NEAREST) { accum = ld<T>(in, off); break; }
            accum += (acc_t<T>)(w * (float)ld<T>(in, off));
        }
        st<T>(out, i, accum);
    }
}

template <typename W> __global__ void fill_kernel(W *out, W v, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) out[i] = v;
}

template <typename T> __global__ void range_kernel(T *out, double start, double delta, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = from_acc<T, acc_t<T>>((acc_t<T>)(start + (double)i * delta));
}

} // namespace knc

using namespace knc;

extern "C" cudaError_t knc_copy_launch(const knc_copy *p, cudaStream_t s) {
    int64_t n = 1;
    for (int d = 0; d < p->rank; d++) n *= p->dims[d];
    if (n <= 0) return cudaSuccess;
    switch (p->elem_size) {
    case 1: return copy_go<uint8_t>(*p, n, s);
    case 2: return copy_go<uint16_t>(*p, n, s);
    case 4: return copy_go<uint32_t>(*p, n, s);
    case 8: return copy_go<uint64_t>(*p, n, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t knc_tile(const void *in, void *out, int elem_size, int rank, const int64_t *in_dims,
                                const int64_t *out_dims, cudaStream_t s) {
    knc_copy d = {};
    int64_t n = 1;
    for (int i = 0; i < rank; i++) { d.dims[i] = out_dims[i]; d.src_strides[i] = in_dims[i]; n *= out_dims[i]; }
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, 256);
    switch (elem_size) {
    case 1: tile_kernel<uint8_t><<<g, 256, 0, s>>>((const uint8_t *)in, (uint8_t *)out, rank, d, n); break;
    case 2: tile_kernel<uint16_t><<<g, 256, 0, s>>>((const uint16_t *)in, (uint16_t *)out, rank, d, n); break;
    case 4: tile_kernel<uint32_t><<<g, 256, 0, s>>>((const uint32_t *)in, (uint32_t *)out, rank, d, n); break;
    case 8: tile_kernel<uint64_t><<<g, 256, 0, s>>>((const uint64_t *)in, (uint64_t *)out, rank, d, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t knc_pad_launch(const knc_pad *p, cudaStream_t s) {
    int64_t n = 1;
    for (int d = 0; d < p->rank; d++) n *= p->out_dims[d];
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, 256);
    KNC_DISPATCH_ALL(p->dtype, pad_kernel<T><<<g, 256, 0, s>>>(*p, n));
    return cudaGetLastError();
}

extern "C" cudaError_t knc_to_nhwc_narrow(const void *src, kiln_dtype st, void *dst, kiln_dtype dt, int64_t n, int64_t c,
                                          int64_t hw, int64_t p, cudaStream_t s) {
    if (n * hw <= 0) return cudaSuccess;
    if (c < 1 || c > p || (p != 4 && p != 8) || (uintptr_t)dst % (p * kiln_dtype_size(dt) >= 16 ? 16 : p * kiln_dtype_size(dt)))
        return cudaErrorInvalidValue;
#define KNC_TO_NHWC(S)                                                                          \
    switch (dt) {                                                                               \
    case KILN_F16: return to_nhwc_go<S, __half>(src, dst, n * hw, hw, (int)c, (int)p, s);       \
    case KILN_BF16: return to_nhwc_go<S, __nv_bfloat16>(src, dst, n * hw, hw, (int)c, (int)p, s); \
    case KILN_F32: return to_nhwc_go<S, float>(src, dst, n * hw, hw, (int)c, (int)p, s);        \
    default: return cudaErrorInvalidValue;                                                      \
    }
    switch (st) {
    case KILN_F32: KNC_TO_NHWC(float)
    case KILN_F16: KNC_TO_NHWC(__half)
    case KILN_BF16: KNC_TO_NHWC(__nv_bfloat16)
    default: return cudaErrorInvalidValue;
    }
#undef KNC_TO_NHWC
}

extern "C" cudaError_t knc_pad_channels8(const void *in, void *out, int c, int64_t rows, cudaStream_t s) {
    if (rows <= 0) return cudaSuccess;
    if (c < 1 || c > 8 || ((uintptr_t)out & 15)) return cudaErrorInvalidValue;
    pad_channels8_kernel<<<grid_for(rows, 256), 256, 0, s>>>((const uint16_t *)in, (uint4 *)out, c, rows);
    return cudaGetLastError();
}

extern "C" cudaError_t knc_gather(const void *data, const void *idx, kiln_dtype idx_dtype, void *out, int elem_size,
                                  int64_t outer, int64_t axis_len, int64_t n_idx, int64_t inner, cudaStream_t s) {
    int64_t n = outer * n_idx * inner;
    if (n <= 0) return cudaSuccess;
    if (axis_len <= 0) return cudaErrorInvalidValue;
    unsigned g = grid_for(n, 256);
#define KNC_GATHER(W)                                                                             \
    if (idx_dtype == KILN_I32)                                                                    \
        gather_kernel<W, int32_t><<<g, 256, 0, s>>>((const W *)data, (const int32_t *)idx, (W *)out, axis_len, n_idx, inner, n); \
    else                                                                                          \
        gather_kernel<W, int64_t><<<g, 256, 0, s>>>((const W *)data, (const int64_t *)idx, (W *)out, axis_len, n_idx, inner, n);
    switch (elem_size) {
    case 1: KNC_GATHER(uint8_t); break;
    case 2: KNC_GATHER(uint16_t); break;
    case 4: KNC_GATHER(uint32_t); break;
    case 8: KNC_GATHER(uint64_t); break;
    default: return cudaErrorInvalidValue;
    }
#undef KNC_GATHER
    return cudaGetLastError();
}

extern "C" cudaError_t knc_resize_launch(const knc_resize *p, cudaStream_t s) {
    int64_t n = 1;
    for (int d = 0; d < p->rank; d++) n *= p->out_dims[d];
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, 256);
    KNC_DISPATCH_ALL(p->dtype, resize_kernel<T><<<g, 256, 0, s>>>(*p, n));
    return cudaGetLastError();
}

extern "C" cudaError_t knc_fill(void *out, int elem_size, uint64_t value, int64_t n, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, 256);
    switch (elem_size) {
    case 1: fill_kernel<uint8_t><<<g, 256, 0, s>>>((uint8_t *)out, (uint8_t)value, n); break;
    case 2: fill_kernel<uint16_t><<<g, 256, 0, s>>>((uint16_t *)out, (uint16_t)value, n); break;
    case 4: fill_kernel<uint32_t><<<g, 256, 0, s>>>((uint32_t *)out, (uint32_t)value, n); break;
    case 8: fill_kernel<uint64_t><<<g, 256, 0, s>>>((uint64_t *)out, value, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t knc_range(void *out, kiln_dtype dtype, double start, double delta, int64_t n, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, 256);
    KNC_DISPATCH_ALL(dtype, range_kernel<T><<<g, 256, 0, s>>>((T *)out, start, delta, n));
    return cudaGetLastError();
}
