// The elementwise kernel: every unary, binary, variadic, comparison and logic op, Where and the
// conv/gemm epilogue, with numpy broadcasting through per-input strides; Pow with mixed or
// integer types (its own kernel); and Cast.
#include "knc_common.cuh"

#include <math.h>

namespace knc {

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

// Mod: C's fmod (the dividend's sign) or, for KNC_MOD, moved to the divisor's sign. Integers:
// x mod 0 is 0 (kiln's choice, as on the CPU) and x mod -1 is 0 (INT64_MIN % -1 would trap).
template <typename C> __device__ __forceinline__ C mod_op(bool c_fmod, C x, C y) {
    C r;
    if constexpr (std::is_floating_point<C>::value) {
        r = fmod(x, y);
    } else {
        if (y == 0 || y == (C)-1) return (C)0;
        r = x % y;
    }
    if (!c_fmod && r != 0 && (r < 0) != (y < 0)) r += y;
    return r;
}

// The conv/gemm epilogue: bias (times scale) and residual added, then the activation `act`.
template <typename C> __device__ __forceinline__ C epilogue_op(const knc_ew &p, int act, const C *x) {
    C r = x[0];
    if (p.flags & 1) r += (C)p.scale * x[1];
    if (p.flags & 2) r += x[2];
    return act_apply<C>(act, r, p.alpha, p.beta);
}
// Clip: bounds from x[1], x[2] when they are device tensors (ew_clip_bounds), else alpha, beta.
template <typename C> __device__ __forceinline__ C clip_op(const knc_ew &p, const C *x) {
    C r = x[0];
    if (p.flags & 1) { C lo = p.lo_ptr ? x[1] : (C)p.alpha; r = r < lo ? lo : r; }
    if (p.flags & 2) { C hi = p.hi_ptr ? x[2] : (C)p.beta; r = r > hi ? hi : r; }
    return r;
}

// The op on loaded values: x[k] is input k (for Where, x[1] and x[2], with cond from input 0).
// Comparisons and logic return 0 or 1.
template <typename C> __device__ __forceinline__ C ew_eval(const knc_ew &p, const C *x, bool cond) {
    switch (p.op) {
    case KNC_ADD: case KNC_SUB: case KNC_MUL: case KNC_DIV: case KNC_POW: case KNC_PRELU:
        return binary<C>(p.op, x[0], x[1]);
    case KNC_MIN: case KNC_MAX: case KNC_SUM: case KNC_MEAN: {
        C r = x[0];
        for (int k = 1; k < p.n_in; k++) r = binary<C>(p.op, r, x[k]);
        return p.op == KNC_MEAN ? (C)(r * (C)p.scale) : r;
    }
    case KNC_EQUAL: return x[0] == x[1];
    case KNC_LESS: return x[0] < x[1];
    case KNC_GREATER: return x[0] > x[1];
    case KNC_NOT: return x[0] ? (C)0 : (C)1;
    case KNC_AND: return (x[0] && x[1]) ? (C)1 : (C)0;
    case KNC_WHERE: return cond ? x[1] : x[2];
    case KNC_MOD: case KNC_FMOD: return mod_op<C>(p.op == KNC_FMOD, x[0], x[1]);
    case KNC_EPILOGUE: return epilogue_op<C>(p, p.act, x);
    case KNC_CLIP: return clip_op<C>(p, x);
    default: return unary<C>(p, x[0]);
    }
}

// Loads the clip bounds (device scalars) into x[1], x[2].
template <typename T> __device__ __forceinline__ void ew_clip_bounds(const knc_ew &p, acc_t<T> *x) {
    if (p.op != KNC_CLIP) return;
    if (p.lo_ptr) x[1] = ld<T>(p.lo_ptr, 0);
    if (p.hi_ptr) x[2] = ld<T>(p.hi_ptr, 0);
}

template <typename T, typename TO, typename I, bool SIMPLE>
__global__ void __launch_bounds__(256) ew_kernel(const __grid_constant__ knc_ew p) {
    using C = acc_t<T>;
    const I n = (I)p.n;
    const int first = p.op == KNC_WHERE ? 1 : 0; // Where's condition is read as bool
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
        C x[KNC_EW_MAX_IN];
#pragma unroll
        for (int k = 0; k < KNC_EW_MAX_IN; k++) x[k] = 0;
        for (int k = first; k < p.n_in; k++)
            if (p.in[k]) x[k] = ld<T>(p.in[k], off[k]);
        ew_clip_bounds<T>(p, x);
        bool cond = first ? ((const uint8_t *)p.in[0])[off[0]] != 0 : false;
        C r = ew_eval<C>(p, x, cond);
        if constexpr (std::is_same<TO, T>::value) st<T>(p.out, i, r);
        else ((uint8_t *)p.out)[i] = r ? 1 : 0;
    }
}

// 16-byte vectors of V elements, at most 3 inputs, same in and out type: the common unary,
// binary and epilogue. Each input is contiguous like the output (kind 0), one scalar (kind 1),
// (rank 2, [rows, row]) a vector of `row` elements repeated on every row (kind 2: a per-channel
// bias of NHWC data), with row a multiple of V so that a vector never straddles two rows, or
// (rank 2 [chans, inner] or rank 3 [outer, chans, inner]) one value per channel repeated over
// `inner` elements (kind 3: a per-channel bias of NCHW data; fp32 convolutions' epilogue took the
// indexed kernel, 50 us of ResNet-18's 179 us layer1 convolution at batch 16 on an H200).
struct ew_vec_kinds { int kind[3]; int64_t row, inner, chans; };

// One element of the vector kernel. OP and ACT fixed at compile time give a few instructions per
// element; OP < 0 runs the whole ew_eval switch. (Unrolling that switch 8 ways per thread made
// a plain Clip over 7.2 M f16 values take 91 us on an H200, about 15x its memory time.)
template <typename C, int OP, int ACT> __device__ __forceinline__ C ew_vec_op(const knc_ew &p, C *xe) {
    if constexpr (OP == KNC_EPILOGUE) {
        return epilogue_op<C>(p, ACT, xe);
    } else if constexpr (OP == KNC_ADD || OP == KNC_SUB || OP == KNC_MUL || OP == KNC_DIV) {
        return binary<C>(OP, xe[0], xe[1]);
    } else if constexpr (OP == KNC_RELU) {
        return xe[0] > 0 ? xe[0] : (C)0;
    } else if constexpr (OP == KNC_CLIP) {
        return clip_op<C>(p, xe);
    } else {
        return ew_eval<C>(p, xe, false);
    }
}

template <typename T, int V, int OP, int ACT>
__global__ void __launch_bounds__(256) ew_vec_kernel(const __grid_constant__ knc_ew p, ew_vec_kinds kd, int64_t nvec) {
    using C = acc_t<T>;
    struct alignas(16) vec { T v[V]; };
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < nvec; j += (int64_t)gridDim.x * blockDim.x) {
        C x[3][V];
#pragma unroll
        for (int k = 0; k < 3; k++) {
            if (k < p.n_in && p.in[k] && kd.kind[k] == 0) {
                vec w = ((const vec *)p.in[k])[j];
#pragma unroll
                for (int e = 0; e < V; e++) x[k][e] = to_acc<C, T>(w.v[e]);
            } else if (k < p.n_in && p.in[k] && kd.kind[k] == 2) { // a constant: any alignment, from cache
                const int64_t c0 = j * V % kd.row;
#pragma unroll
                for (int e = 0; e < V; e++) x[k][e] = ld<T>(p.in[k], c0 + e);
            } else if (k < p.n_in && p.in[k] && kd.kind[k] == 3) { // a channel's value, from cache
                if (kd.inner % V == 0) {
                    const C v = ld<T>(p.in[k], j * V / kd.inner % kd.chans);
#pragma unroll
                    for (int e = 0; e < V; e++) x[k][e] = v;
                } else {
#pragma unroll
                    for (int e = 0; e < V; e++) x[k][e] = ld<T>(p.in[k], (j * V + e) / kd.inner % kd.chans);
                }
            } else {
                C s = k < p.n_in && p.in[k] ? ld<T>(p.in[k], 0) : (C)0;
#pragma unroll
                for (int e = 0; e < V; e++) x[k][e] = s;
            }
        }
        vec o;
        if constexpr (OP >= 0) {
#pragma unroll
            for (int e = 0; e < V; e++) {
                C xe[KNC_EW_MAX_IN] = {x[0][e], x[1][e], x[2][e]};
                ew_clip_bounds<T>(p, xe);
                o.v[e] = from_acc<T, C>(ew_vec_op<C, OP, ACT>(p, xe));
            }
        } else {
#pragma unroll 1
            for (int e = 0; e < V; e++) {
                C xe[KNC_EW_MAX_IN] = {x[0][e], x[1][e], x[2][e]};
                ew_clip_bounds<T>(p, xe);
                o.v[e] = from_acc<T, C>(ew_eval<C>(p, xe, false));
            }
        }
        ((vec *)p.out)[j] = o;
    }
}

// Launches the vector kernel specialized for the op (and the epilogue's activation) where one is.
template <typename T, int V> static void ew_vec_launch(const knc_ew &p, const ew_vec_kinds &kd, int64_t nvec, cudaStream_t s) {
    const unsigned g = grid_for(nvec, 256);
#define KNC_VEC(OP, ACT) ew_vec_kernel<T, V, OP, ACT><<<g, 256, 0, s>>>(p, kd, nvec)
    switch (p.op) {
    case KNC_EPILOGUE:
        switch (p.act) {
        case KNC_ACT_NONE: KNC_VEC(KNC_EPILOGUE, KNC_ACT_NONE); return;
        case KNC_ACT_RELU: KNC_VEC(KNC_EPILOGUE, KNC_ACT_RELU); return;
        case KNC_ACT_RELU6: KNC_VEC(KNC_EPILOGUE, KNC_ACT_RELU6); return;
        case KNC_ACT_CLIP: KNC_VEC(KNC_EPILOGUE, KNC_ACT_CLIP); return;
        case KNC_ACT_SIGMOID: KNC_VEC(KNC_EPILOGUE, KNC_ACT_SIGMOID); return;
        case KNC_ACT_HARDSWISH: KNC_VEC(KNC_EPILOGUE, KNC_ACT_HARDSWISH); return;
        case KNC_ACT_SILU: KNC_VEC(KNC_EPILOGUE, KNC_ACT_SILU); return;
        case KNC_ACT_GELU_ERF: KNC_VEC(KNC_EPILOGUE, KNC_ACT_GELU_ERF); return;
        case KNC_ACT_GELU_TANH: KNC_VEC(KNC_EPILOGUE, KNC_ACT_GELU_TANH); return;
        case KNC_ACT_LEAKY_RELU: KNC_VEC(KNC_EPILOGUE, KNC_ACT_LEAKY_RELU); return;
        default: KNC_VEC(-1, 0); return;
        }
    case KNC_ADD: KNC_VEC(KNC_ADD, 0); return;
    case KNC_SUB: KNC_VEC(KNC_SUB, 0); return;
    case KNC_MUL: KNC_VEC(KNC_MUL, 0); return;
    case KNC_DIV: KNC_VEC(KNC_DIV, 0); return;
    case KNC_RELU: KNC_VEC(KNC_RELU, 0); return;
    case KNC_CLIP: KNC_VEC(KNC_CLIP, 0); return;
    default: KNC_VEC(-1, 0); return;
    }
#undef KNC_VEC
}

// The input kinds of ew_vec_kernel, or false when the operands do not fit it.
template <int V> static bool ew_vec_plan(const knc_ew &p, ew_vec_kinds *kd) {
    const int r = p.rank;
    // rank 2 and 3 have no tail pass (ew_go): whole vectors only
    if (p.n_in > 3 || p.op == KNC_WHERE || p.n < V || r > 3 || (r >= 2 && p.n % V)) return false;
    uintptr_t al = (uintptr_t)p.out;
    kd->row = r == 2 ? p.dims[1] : 0;
    kd->inner = r >= 2 ? p.dims[r - 1] : 0;
    kd->chans = r >= 2 ? p.dims[r - 2] : 0;
    for (int k = 0; k < 3; k++) {
        kd->kind[k] = 1;
        if (k >= p.n_in || !p.in[k]) continue;
        const int64_t *st = p.strides[k];
        const bool zero = st[0] == 0 && (r < 2 || st[1] == 0) && (r < 3 || st[2] == 0);
        if (r <= 1) kd->kind[k] = st[0] ? 0 : 1;
        else if (zero) kd->kind[k] = 1;
        else if (r == 2 && st[1] == 1 && st[0] == p.dims[1]) kd->kind[k] = 0;
        else if (r == 3 && st[2] == 1 && st[1] == p.dims[2] && st[0] == p.dims[1] * p.dims[2]) kd->kind[k] = 0;
        else if (r == 2 && st[1] == 1 && st[0] == 0 && kd->row % V == 0) kd->kind[k] = 2;
        else if ((r == 2 && st[0] == 1 && st[1] == 0) || (r == 3 && st[0] == 0 && st[1] == 1 && st[2] == 0)) kd->kind[k] = 3;
        else return false;
        if (kd->kind[k] == 0) al |= (uintptr_t)p.in[k];
    }
    return al % 16 == 0;
}

template <typename T, typename TO> static cudaError_t ew_go(const knc_ew &p, cudaStream_t s) {
    bool small = p.n < (int64_t)INT32_MAX;
    if (small) {
        for (int k = 0; k < KNC_EW_MAX_IN; k++)
            for (int d = 0; d < p.rank; d++)
                if (p.strides[k][d] * p.dims[d] >= (int64_t)INT32_MAX) small = false;
    }
    if constexpr (std::is_same<TO, T>::value && (std::is_same<T, float>::value || std::is_same<T, __half>::value ||
                                                 std::is_same<T, __nv_bfloat16>::value)) {
        constexpr int V = 16 / sizeof(T);
        ew_vec_kinds kd;
        if (ew_vec_plan<V>(p, &kd)) {
            int64_t nvec = p.n / V;
            ew_vec_launch<T, V>(p, kd, nvec, s);
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess || nvec * V == p.n) return e;
            if (p.rank >= 2) return cudaErrorInvalidValue; // whole vectors only (ew_vec_plan): no tail
            // the tail: the same op on the last n % V elements
            knc_ew t = p;
            int64_t done = nvec * V;
            for (int k = 0; k < p.n_in; k++)
                if (t.in[k] && t.strides[k][0]) t.in[k] = (const T *)t.in[k] + done;
            t.out = (T *)t.out + done;
            t.n = p.n - done;
            if (t.rank == 1) t.dims[0] = t.n;
            ew_kernel<T, TO, int32_t, true><<<1, 256, 0, s>>>(t);
            return cudaGetLastError();
        }
    }
    unsigned g = grid_for(p.n, 256);
    if (p.rank <= 1) {
        if (small) ew_kernel<T, TO, int32_t, true><<<g, 256, 0, s>>>(p);
        else ew_kernel<T, TO, int64_t, true><<<g, 256, 0, s>>>(p);
    } else {
        if (small) ew_kernel<T, TO, int32_t, false><<<g, 256, 0, s>>>(p);
        else ew_kernel<T, TO, int64_t, false><<<g, 256, 0, s>>>(p);
    }
    return cudaGetLastError();
}

// ---- Pow with mixed or integer types (the CPU backend's kn_binary_f / kn_ipow semantics) ----

// Element i of any numeric type as double / as int64 (bool as 0/1).
__device__ __forceinline__ double ld_any_f64(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F16: return __half2float(((const __half *)p)[i]);
    case KILN_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case KILN_F64: return ((const double *)p)[i];
    case KILN_I64: return (double)((const int64_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}
__device__ __forceinline__ int64_t ld_any_i64(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_I64: return ((const int64_t *)p)[i];
    case KILN_I32: return ((const int32_t *)p)[i];
    case KILN_I8: return ((const int8_t *)p)[i];
    case KILN_U8: return ((const uint8_t *)p)[i];
    case KILN_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0; // float exponents take the double path
    }
}

// a^b by squaring in wrapping 64-bit arithmetic; b < 0 gives 1/a^-b truncated (0 unless |a| = 1).
__device__ __forceinline__ int64_t ipow_wrap(int64_t a, int64_t b) {
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)a;
    for (; b; b >>= 1, x *= x)
        if (b & 1) r *= x;
    return (int64_t)r;
}

// Stores a double into the base's type: floats round (f16/bf16 through f32, as the CPU does);
// integers truncate toward zero, saturate and take NaN to 0 (kn_store_f64).
template <typename T> __device__ __forceinline__ void pow_store(void *out, int64_t i, double v) {
    if constexpr (std::is_same<T, int64_t>::value) {
        ((int64_t *)out)[i] = v != v ? 0 : v >= 9.2233720368547758e18 ? INT64_MAX
                            : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v;
    } else if constexpr (std::is_same<T, int32_t>::value) {
        ((int32_t *)out)[i] = v != v ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
    } else if constexpr (std::is_same<T, double>::value) {
        ((double *)out)[i] = v;
    } else {
        ((T *)out)[i] = from_acc<T, float>((float)v);
    }
}

// y = in[0] ^ in[1] with in[0] of type T (the output's) and in[1] of p.dtype1.
template <typename T, bool SIMPLE> __global__ void __launch_bounds__(256) pow_kernel(const __grid_constant__ knc_ew p) {
    const bool int_exp = !(p.dtype1 == KILN_F32 || p.dtype1 == KILN_F16 || p.dtype1 == KILN_BF16 || p.dtype1 == KILN_F64);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t o0, o1;
        if (SIMPLE) {
            o0 = p.strides[0][0] ? i : 0;
            o1 = p.strides[1][0] ? i : 0;
        } else {
            o0 = o1 = 0;
            int64_t rem = i;
            for (int d = p.rank - 1; d >= 0; d--) {
                int64_t idx = rem % p.dims[d];
                rem /= p.dims[d];
                o0 += idx * p.strides[0][d];
                o1 += idx * p.strides[1][d];
            }
        }
        const T a = ((const T *)p.in[0])[o0];
        if constexpr (std::is_integral<T>::value) {
            if (int_exp) {
                int64_t r = ipow_wrap((int64_t)a, ld_any_i64(p.in[1], p.dtype1, o1));
                ((T *)p.out)[i] = (T)(typename std::make_unsigned<T>::type)(uint64_t)r; // wraps, as kn_sti
                continue;
            }
        }
        double x;
        if constexpr (std::is_integral<T>::value || std::is_same<T, double>::value) x = (double)a;
        else x = (double)to_acc<float, T>(a);
        pow_store<T>(p.out, i, pow(x, ld_any_f64(p.in[1], p.dtype1, o1)));
    }
}

template <typename T> static cudaError_t pow_go(const knc_ew &p, cudaStream_t s) {
    unsigned g = grid_for(p.n, 256);
    if (p.rank <= 1) pow_kernel<T, true><<<g, 256, 0, s>>>(p);
    else pow_kernel<T, false><<<g, 256, 0, s>>>(p);
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

// f32 <-> f16/bf16 four at a time: the Casts at the edges of a reduced-precision model; the
// one-element kernel moved 7.2 M values at about half the memory bandwidth.
template <typename Ti, typename To> __global__ void __launch_bounds__(256) cast4_kernel(const Ti *in, To *out, int64_t n4) {
    struct alignas(4 * sizeof(Ti)) vi { Ti v[4]; };
    struct alignas(4 * sizeof(To)) vo { To v[4]; };
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n4; j += (int64_t)gridDim.x * blockDim.x) {
        vi a = ((const vi *)in)[j];
        vo b;
#pragma unroll
        for (int e = 0; e < 4; e++) b.v[e] = from_acc<To, float>(to_acc<float, Ti>(a.v[e]));
        ((vo *)out)[j] = b;
    }
}

} // namespace knc

using namespace knc;

static bool ew_is_fp(kiln_dtype t) { return t == KILN_F32 || t == KILN_F16 || t == KILN_BF16 || t == KILN_F64; }

extern "C" cudaError_t knc_ew_launch(const knc_ew *p, cudaStream_t s) {
    if (p->n <= 0) return cudaSuccess;
    if (p->op == KNC_POW && p->dtype1 != KILN_DTYPE_INVALID && (p->dtype1 != p->dtype || !ew_is_fp(p->dtype))) {
        if (p->n_in != 2 || p->out_dtype != p->dtype || p->dtype1 == KILN_BOOL || p->dtype1 >= KILN_DTYPE_COUNT)
            return cudaErrorInvalidValue;
        switch (p->dtype) {
        case KILN_F32: return pow_go<float>(*p, s);
        case KILN_F16: return pow_go<__half>(*p, s);
        case KILN_BF16: return pow_go<__nv_bfloat16>(*p, s);
        case KILN_F64: return pow_go<double>(*p, s);
        case KILN_I64: return pow_go<int64_t>(*p, s);
        case KILN_I32: return pow_go<int32_t>(*p, s);
        default: return cudaErrorInvalidValue;
        }
    }
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
    constexpr bool half_in = std::is_same<Ti, __half>::value || std::is_same<Ti, __nv_bfloat16>::value;
    if constexpr (std::is_same<Ti, float>::value || half_in) {
        bool ok = n % 4 == 0 && ((uintptr_t)in | (uintptr_t)out) % 16 == 0;
        unsigned g4 = grid_for(n / 4, 256);
        if (ok && half_in && ot == KILN_F32) {
            cast4_kernel<Ti, float><<<g4, 256, 0, s>>>(x, (float *)out, n / 4);
            return cudaGetLastError();
        }
        if (ok && !half_in && ot == KILN_F16) {
            cast4_kernel<Ti, __half><<<g4, 256, 0, s>>>(x, (__half *)out, n / 4);
            return cudaGetLastError();
        }
        if (ok && !half_in && ot == KILN_BF16) {
            cast4_kernel<Ti, __nv_bfloat16><<<g4, 256, 0, s>>>(x, (__nv_bfloat16 *)out, n / 4);
            return cudaGetLastError();
        }
    }
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
