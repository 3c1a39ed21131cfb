// Device-side helpers shared by kiln's CUDA kernels: element types, loads and stores that
// compute in float (f16/bf16/f32), double (f64) or int64 (integers and bool), grid sizing and a
// block-wide reduction.
#ifndef KILN_KNC_COMMON_CUH
#define KILN_KNC_COMMON_CUH

#include "cuda_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
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

// A fused activation (enum kn_act, as KNC_ACT_*), in the computing type.
template <typename C> __device__ __forceinline__ C act_apply(int act, C x, float a, float b) {
    if constexpr (std::is_floating_point<C>::value) {
        switch (act) {
        case KNC_ACT_RELU: return x > 0 ? x : (C)0;
        case KNC_ACT_RELU6: return x < 0 ? (C)0 : x > 6 ? (C)6 : x;
        case KNC_ACT_CLIP: return x < (C)a ? (C)a : x > (C)b ? (C)b : x;
        case KNC_ACT_SIGMOID: return (C)1 / ((C)1 + exp(-x));
        case KNC_ACT_HARDSWISH: { C t = x + 3; t = t < 0 ? (C)0 : t > 6 ? (C)6 : t; return x * t / (C)6; }
        case KNC_ACT_SILU: return x / ((C)1 + exp(-x));
        case KNC_ACT_GELU_ERF: return (C)0.5 * x * ((C)1 + erf(x * (C)0.70710678118654752));
        case KNC_ACT_GELU_TANH:
            return (C)0.5 * x * ((C)1 + tanh((C)0.7978845608028654 * (x + (C)0.044715 * x * x * x)));
        case KNC_ACT_LEAKY_RELU: return x >= 0 ? x : (C)a * x;
        default: return x;
        }
    } else {
        return x;
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
        __syncwarp(); // every lane has read sh[] (the shuffles do not order shared memory)
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
