// The elementwise kernel: every unary, binary, variadic, comparison and logic op, Where and the
// conv/gemm epilogue, with numpy broadcasting through per-input strides; and Cast.
#include "knc_common.cuh"

#include <math.h>

namespace knc {

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

template <typename C> __device__ __forceinline__ C unary(const knc_ew &p, C x) {
    if constexpr (std::is_floating_point<C>::value) {
        const C a = (C)p.alpha, b = (C)p.beta;
        switch (p.op) {
        case KNC_RELU: return x > 0 ? x : (C)0;
        case KNC_LEAKY_RELU: return x >= 0 ? x : a * x;
        case KNC_ELU: return x >= 0 ? x : a * (exp(x) - (C)1);
        case KNC_SELU: return (C)p.gamma * (x > 0 ? x : a * (exp(x) - (C)1));
        case KNC_HARD_SIGMOID: { C t = a * x + b; return t < 0 ? (C)0 : t > 1 ? (C)1 : t; }
        case KNC_HARD_SWISH: { C t = x / (C)6 + (C)0.5; t = t < 0 ? (C)0 : t > 1 ? (C)1 : t; return x * t; }
        case KNC_SIGMOID: return (C)1 / ((C)1 + exp(-x));
        case KNC_TANH: return tanh(x);
        case KNC_ERF: return erf(x);
        case KNC_GELU: return (C)0.5 * x * ((C)1 + erf(x * (C)0.70710678118654752));
        case KNC_GELU_TANH:
            return (C)0.5 * x * ((C)1 + tanh((C)0.7978845608028654 * (x + (C)0.044715 * x * x * x)));
        case KNC_SOFTPLUS: return x > (C)20 ? x : log1p(exp(x));
        case KNC_MISH: { C sp = x > (C)20 ? x : log1p(exp(x)); return x * tanh(sp); }
        case KNC_SQRT: return sqrt(x);
        case KNC_RECIPROCAL: return (C)1 / x;
        case KNC_EXP: return exp(x);
        case KNC_LOG: return log(x);
        case KNC_FLOOR: return floor(x);
        case KNC_CEIL: return ceil(x);
        case KNC_NEG: return -x;
        case KNC_ABS: return x < 0 ? -x : x;
        default: return x;
        }
    } else {
        switch (p.op) {
        case KNC_RELU: return x > 0 ? x : (C)0;
        case KNC_NEG: return -x;
        case KNC_ABS: return x < 0 ? -x : x;
        case KNC_RECIPROCAL: return x ? (C)1 / x : (C)0;
        case KNC_SQRT: return (C)sqrt((double)x);
        default: return x;
        }
    }
}

template <typename C> __device__ __forceinline__ C binary(int op, C x, C y) {
    switch (op) {
    case KNC_ADD: case KNC_SUM: case KNC_MEAN: return x + y;
    case KNC_SUB: return x - y;
    case KNC_MUL: return x * y;
    case KNC_DIV:
        if constexpr (std::is_floating_point<C>::value) return x / y;
        else return y ? x / y : (C)0;
    case KNC_POW:
        if constexpr (std::is_floating_point<C>::value) return pow(x, y);
        else return (C)pow((double)x, (double)y);
    case KNC_PRELU: return x >= 0 ? x : y * x;
    case KNC_MIN:
        if constexpr (std::is_floating_point<C>::value) { if (isnan(x) || isnan(y)) return x + y; }
        return x < y ? x : y;
    case KNC_MAX:
        if constexpr (std::is_floating_point<C>::value) { if (isnan(x) || isnan(y)) return x + y; }
        return x > y ? x : y;
    default: return x;
    }
}

template <typename T, typename TO, typename I, bool SIMPLE>
__global__ void __launch_bounds__(256) ew_kernel(const knc_ew p) {
    using C = acc_t<T>;
    const I n = (I)p.n;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I off[KNC_EW_MAX_IN];
        if (SIMPLE) {
#pragma unroll
            for (int k = 0; k < KNC_EW_MAX_IN; k++) off[k] = p.strides[k][0] ? i : 0;
        } else {
#pragma unroll
            for (int k = 0; k < KNC_EW_MAX_IN; k++) off[k] = 0;
            I rem = i;
            for (int d = p.rank - 1; d >= 0; d--) {
                I dim = (I)p.dims[d];
                I idx = rem % dim;
                rem /= dim;
#pragma unroll
                for (int k = 0; k < KNC_EW_MAX_IN; k++) off[k] += idx * (I)p.strides[k][d];
            }
        }
        C r;
        switch (p.op) {
        case KNC_ADD: case KNC_SUB: case KNC_MUL: case KNC_DIV: case KNC_POW: case KNC_PRELU:
            r = binary<C>(p.op, ld<T>(p.in[0], off[0]), ld<T>(p.in[1], off[1]));
            break;
        case KNC_MIN: case KNC_MAX: case KNC_SUM: case KNC_MEAN:
            r = ld<T>(p.in[0], off[0]);
            for (int k = 1; k < p.n_in; k++) r = binary<C>(p.op, r, ld<T>(p.in[k], off[k]));
            if (p.op == KNC_MEAN) r = (C)(r * (C)p.scale);
            break;
        case KNC_EQUAL: r = ld<T>(p.in[0], off[0]) == ld<T>(p.in[1], off[1]); break;
        case KNC_LESS: r = ld<T>(p.in[0], off[0]) < ld<T>(p.in[1], off[1]); break;
        case KNC_GREATER: r = ld<T>(p.in[0], off[0]) > ld<T>(p.in[1], off[1]); break;
        case KNC_NOT: r = ld<T>(p.in[0], off[0]) ? (C)0 : (C)1; break;
        case KNC_AND: r = (ld<T>(p.in[0], off[0]) && ld<T>(p.in[1], off[1])) ? (C)1 : (C)0; break;
        case KNC_WHERE:
            r = ((const uint8_t *)p.in[0])[off[0]] ? ld<T>(p.in[1], off[1]) : ld<T>(p.in[2], off[2]);
            break;
        case KNC_EPILOGUE:
            r = ld<T>(p.in[0], off[0]);
            if (p.flags & 1) r += (C)p.scale * ld<T>(p.in[1], off[1]);
            if (p.flags & 2) r += ld<T>(p.in[2], off[2]);
            r = act_apply<C>(p.act, r, p.alpha, p.beta);
            break;
        case KNC_CLIP: {
            r = ld<T>(p.in[0], off[0]);
            if (p.flags & 1) { C lo = p.lo_ptr ? ld<T>(p.lo_ptr, 0) : (C)p.alpha; r = r < lo ? lo : r; }
            if (p.flags & 2) { C hi = p.hi_ptr ? ld<T>(p.hi_ptr, 0) : (C)p.beta; r = r > hi ? hi : r; }
            break;
        }
        default: r = unary<C>(p, ld<T>(p.in[0], off[0])); break;
        }
        if constexpr (std::is_same<TO, T>::value) st<T>(p.out, i, r);
        else ((uint8_t *)p.out)[i] = r ? 1 : 0;
    }
}

template <typename T, typename TO> static cudaError_t ew_go(const knc_ew &p, cudaStream_t s) {
    unsigned g = grid_for(p.n, 256);
    bool small = p.n < (int64_t)INT32_MAX;
    if (small) {
        for (int k = 0; k < KNC_EW_MAX_IN; k++)
            for (int d = 0; d < p.rank; d++)
                if (p.strides[k][d] * p.dims[d] >= (int64_t)INT32_MAX) small = false;
    }
    if (p.rank <= 1) {
        if (small) ew_kernel<T, TO, int32_t, true><<<g, 256, 0, s>>>(p);
        else ew_kernel<T, TO, int64_t, true><<<g, 256, 0, s>>>(p);
    } else {
        if (small) ew_kernel<T, TO, int32_t, false><<<g, 256, 0, s>>>(p);
        else ew_kernel<T, TO, int64_t, false><<<g, 256, 0, s>>>(p);
    }
    return cudaGetLastError();
}

template <typename Ti, typename To>
__global__ void __launch_bounds__(256) cast_kernel(const Ti *in, To *out, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        using Ci = acc_t<Ti>;
        Ci v = to_acc<Ci, Ti>(in[i]);
        if constexpr (std::is_same<To, bool>::value) {
            ((uint8_t *)out)[i] = v != (Ci)0;
        } else if constexpr (std::is_floating_point<Ci>::value && !std::is_floating_point<acc_t<To>>::value) {
            // float -> int: truncation, saturating at the range of int64 (NaN -> 0)
            double d = (double)v;
            int64_t q = d != d ? 0 : d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
            out[i] = (To)q;
        } else {
            out[i] = from_acc<To, acc_t<To>>((acc_t<To>)v);
        }
    }
}

} // namespace knc

using namespace knc;

extern "C" cudaError_t knc_ew_launch(const knc_ew *p, cudaStream_t s) {
    if (p->n <= 0) return cudaSuccess;
    const bool to_bool = p->out_dtype == KILN_BOOL && p->dtype != KILN_BOOL;
    if (to_bool) {
        KNC_DISPATCH_ALL(p->dtype, return (ew_go<T, uint8_t>(*p, s)));
    } else {
        KNC_DISPATCH_ALL(p->dtype, return (ew_go<T, T>(*p, s)));
    }
    return cudaErrorInvalidValue;
}

template <typename Ti> static cudaError_t cast_from(const void *in, void *out, kiln_dtype ot, int64_t n, cudaStream_t s) {
    unsigned g = grid_for(n, 256);
    const Ti *x = (const Ti *)in;
    switch (ot) {
    case KILN_F32: cast_kernel<Ti, float><<<g, 256, 0, s>>>(x, (float *)out, n); break;
    case KILN_F16: cast_kernel<Ti, __half><<<g, 256, 0, s>>>(x, (__half *)out, n); break;
    case KILN_BF16: cast_kernel<Ti, __nv_bfloat16><<<g, 256, 0, s>>>(x, (__nv_bfloat16 *)out, n); break;
    case KILN_F64: cast_kernel<Ti, double><<<g, 256, 0, s>>>(x, (double *)out, n); break;
    case KILN_I64: cast_kernel<Ti, int64_t><<<g, 256, 0, s>>>(x, (int64_t *)out, n); break;
    case KILN_I32: cast_kernel<Ti, int32_t><<<g, 256, 0, s>>>(x, (int32_t *)out, n); break;
    case KILN_I8: cast_kernel<Ti, int8_t><<<g, 256, 0, s>>>(x, (int8_t *)out, n); break;
    case KILN_U8: cast_kernel<Ti, uint8_t><<<g, 256, 0, s>>>(x, (uint8_t *)out, n); break;
    case KILN_BOOL: cast_kernel<Ti, bool><<<g, 256, 0, s>>>(x, (bool *)out, n); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t knc_cast(const void *in, kiln_dtype it, void *out, kiln_dtype ot, int64_t n, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    if (it == KILN_BOOL) it = KILN_U8; // 0/1 either way
    KNC_DISPATCH_ALL(it, return cast_from<T>(in, out, ot, n, s));
    return cudaErrorInvalidValue;
}
