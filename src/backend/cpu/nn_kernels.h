/* Shared pieces of the CPU nn kernels (nn_conv.c, nn_gemm.c, nn_pool.c, nn_norm.c): the
 * per-family register functions, a guarded sgemm, element access in double, and a scratch
 * arena carved in prepare. */
#ifndef KILN_CPU_NN_KERNELS_H
#define KILN_CPU_NN_KERNELS_H

#include "cpu.h"
#include "ops/nn.h"

#include <math.h>

void kn_cpu_register_nn_conv(kn_kernel *table);
void kn_cpu_register_nn_gemm(kn_kernel *table);
void kn_cpu_register_nn_pool(kn_kernel *table);
void kn_cpu_register_nn_norm(kn_kernel *table);

/* C = alpha * op(A) * op(B) + beta * C in row-major f32 through OpenBLAS; empty sizes are
 * handled here (BLAS rejects zero leading dims). Sizes must fit a BLAS int (checked in
 * prepare with kn_nn_blas_fits). */
void kn_nn_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                 int64_t ldc);
/* Fails (naming the node) when a matrix dim is too large for the BLAS int type. */
kiln_status kn_nn_blas_fits(const kn_node *n, int64_t m, int64_t nn, int64_t k);

/* Element i as double / store a double (any float type; ints through kn_load_f64). */
static inline double kn_nn_ld(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F64: return ((const double *)p)[i];
    case KILN_F16: return kn_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BF16: return kn_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return kn_load_f64(p, t, i);
    }
}
static inline void kn_nn_st(void *p, kiln_dtype t, int64_t i, double v) {
    switch (t) {
    case KILN_F32: ((float *)p)[i] = (float)v; break;
    case KILN_F64: ((double *)p)[i] = v; break;
    case KILN_F16: ((uint16_t *)p)[i] = kn_f32_to_f16((float)v); break;
    case KILN_BF16: ((uint16_t *)p)[i] = kn_f32_to_bf16((float)v); break;
    default: kn_store_f64(p, t, i, v); break;
    }
}

/* The epilogue activation in double (kn_cpu_act's definitions), for the f64 kernels. */
static inline double kn_nn_act_d(const kn_nn_act *a, double x) {
    double t;
    switch (a->act) {
    case KN_ACT_RELU: return x > 0 ? x : 0;
    case KN_ACT_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case KN_ACT_CLIP: return x < a->alpha ? a->alpha : x > a->beta ? a->beta : x;
    case KN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case KN_ACT_HARDSWISH: t = x + 3; t = t < 0 ? 0 : t > 6 ? 6 : t; return x * t / 6;
    case KN_ACT_SILU: return x / (1.0 + exp(-x));
    case KN_ACT_GELU_ERF: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
    case KN_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case KN_ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    default: return x;
    }
}

/* Whether the kernel converts through f32 scratch (f16, bf16) rather than using the data as is. */
static inline int kn_nn_via_f32(kiln_dtype t) { return t == KILN_F16 || t == KILN_BF16; }

/* Scratch carving: sizes are added in prepare (kn_nn_carve with base NULL counts), then the
 * block is allocated once and carved with the same sequence of calls. */
typedef struct kn_nn_carver {
    char *base;
    size_t used;
} kn_nn_carver;
static inline float *kn_nn_carve(kn_nn_carver *c, int64_t n_floats) {
    if (n_floats <= 0) return NULL;
    float *p = c->base ? (float *)(c->base + c->used) : NULL;
    c->used += ((size_t)n_floats * sizeof(float) + 63) & ~(size_t)63;
    return p;
}

/* Odometer step over the first `rank` dims of `dims`: advances idx and the offsets of up to two
 * broadcast inputs (strides in elements, 0 on broadcast dims). */
static inline void kn_nn_odometer(int rank, const int64_t *dims, int64_t *idx, const int64_t *s0,
                                  int64_t *o0, const int64_t *s1, int64_t *o1) {
    for (int d = rank - 1; d >= 0; d--) {
        if (s0) *o0 += s0[d];
        if (s1) *o1 += s1[d];
        if (++idx[d] < dims[d]) return;
        if (s0) *o0 -= s0[d] * dims[d];
        if (s1) *o1 -= s1[d] * dims[d];
        idx[d] = 0;
    }
}

#endif
