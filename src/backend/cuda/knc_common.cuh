// Device-side helpers shared by kiln's CUDA kernels: element types, loads and stores that
// compute in float (f16/bf16/f32), double (f64) or int64 (integers and bool), grid sizing and a
// block-wide reduction.
#ifndef KILN_KNC_COMMON_CUH
#define KILN_KNC_COMMON_CUH

#include "cuda_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

namespace knc {

// The arithmetic type an element type computes in.
template <typename T> struct acc { using type = float; };
template <> struct acc<double> { using type = double; };
template <> struct acc<int64_t> { using type = int64_t; };
template <> struct acc<int32_t> { using type = int64_t; };
template <> struct acc<int8_t> { using type = int64_t; };
template <> struct acc<uint8_t> { using type = int64_t; };
template <typename T> using acc_t = typename acc<T>::type;

template <typename C, typename T> __device__ __forceinline__ C to_acc(T v) { return (C)v; }
template <> __device__ __forceinline__ float to_acc<float, __half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_acc<float, __nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T, typename C> __device__ __forceinline__ T from_acc(C v) { return (T)v; }
template <> __device__ __forceinline__ __half from_acc<__half, float>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ uint8_t from_acc<uint8_t, float>(float v) { return (uint8_t)(int)v; }

template <typename T> __device__ __forceinline__ acc_t<T> ld(const void *p, int64_t i) {
    return to_acc<acc_t<T>, T>(((const T *)p)[i]);
}
template <typename T> __device__ __forceinline__ void st(void *p, int64_t i, acc_t<T> v) {
    ((T *)p)[i] = from_acc<T, acc_t<T>>(v);
}

// Reads element i of any float type as float (parameters whose type may differ from the data).
__device__ __forceinline__ float ldf(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_F16: return __half2float(((const __half *)p)[i]);
    case KILN_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case KILN_F64: return (float)((const double *)p)[i];
    case KILN_I64: return (float)((const int64_t *)p)[i];
    case KILN_I32: return (float)((const int32_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}
__device__ __forceinline__ void stf(void *p, kiln_dtype t, int64_t i, float v) {
    switch (t) {
    case KILN_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    case KILN_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    case KILN_F64: ((double *)p)[i] = v; break;
    default: ((float *)p)[i] = v; break;
    }
}

static inline unsigned grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8; // grid-stride loops cover the rest
    return (unsigned)b;
}

template <typename C> __device__ __forceinline__ C warp_sum(C v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename C> __device__ __forceinline__ C warp_max(C v) {
    for (int o = 16; o > 0; o >>= 1) { C w = __shfl_xor_sync(0xffffffffu, v, o); v = w > v ? w : v; }
    return v;
}
template <typename C> __device__ __forceinline__ C warp_min(C v) {
    for (int o = 16; o > 0; o >>= 1) { C w = __shfl_xor_sync(0xffffffffu, v, o); v = w < v ? w : v; }
    return v;
}

// Block-wide reduction (op 0 sum, 1 max, 2 min); every thread gets the result. blockDim.x is a
// multiple of 32, at most 1024. `sh` holds 32 values.
template <typename C> __device__ C block_reduce(C v, int op, C *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = op == 0 ? warp_sum(v) : op == 1 ? warp_max(v) : warp_min(v);
    __syncthreads(); // sh may still be read from a previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        C w = lane < nw ? sh[lane] : sh[0];
        w = op == 0 ? (lane < nw ? w : (C)0) : w;
        w = op == 0 ? warp_sum(w) : op == 1 ? warp_max(w) : warp_min(w);
        if (lane == 0) sh[0] = w;
    }
    __syncthreads();
    return sh[0];
}

static inline int threads_for_len(int64_t len) {
    int t = 32;
    while (t < 256 && t < len) t <<= 1;
    return t;
}

} // namespace knc

// Dispatches on a kiln dtype to a template taking the element type T.
#define KNC_DISPATCH_FLOAT(dt, ...)                                                               \
    switch (dt) {                                                                                 \
    case KILN_F32: { using T = float; __VA_ARGS__; } break;                                      \
    case KILN_F16: { using T = __half; __VA_ARGS__; } break;                                     \
    case KILN_BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break;                             \
    case KILN_F64: { using T = double; __VA_ARGS__; } break;                                     \
    default: return cudaErrorInvalidValue;                                                        \
    }

#define KNC_DISPATCH_ALL(dt, ...)                                                                 \
    switch (dt) {                                                                                 \
    case KILN_F32: { using T = float; __VA_ARGS__; } break;                                      \
    case KILN_F16: { using T = __half; __VA_ARGS__; } break;                                     \
    case KILN_BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break;                             \
    case KILN_F64: { using T = double; __VA_ARGS__; } break;                                     \
    case KILN_I64: { using T = int64_t; __VA_ARGS__; } break;                                    \
    case KILN_I32: { using T = int32_t; __VA_ARGS__; } break;                                    \
    case KILN_I8: { using T = int8_t; __VA_ARGS__; } break;                                      \
    case KILN_U8: case KILN_BOOL: { using T = uint8_t; __VA_ARGS__; } break;                     \
    default: return cudaErrorInvalidValue;                                                        \
    }

#endif
