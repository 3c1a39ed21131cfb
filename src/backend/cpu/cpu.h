/* The CPU backend: reference kernels for the whole op set (DESIGN decision 6) and a recorder
 * that replays a prepared kernel list. Float types compute in f32 (f16/bf16 are converted on
 * load and store), f64 in f64; integer and bool types where the op defines them. */
#ifndef KILN_CPU_H
#define KILN_CPU_H

#include "backend/backend.h"

/* Each family registers kernels into table[op] (src/backend/cpu/<family>.c). */
void kn_cpu_register_elementwise(kn_kernel *table);
void kn_cpu_register_nn(kn_kernel *table);
void kn_cpu_register_tensor(kn_kernel *table);
void kn_cpu_register_reduce(kn_kernel *table);
void kn_cpu_register_attention(kn_kernel *table); /* KilnAttention (attention.c) */

/* The reference kernel of an op (run == NULL when the op has none). */
const kn_kernel *kn_cpu_kernel(kn_op op);

/* ---- helpers for kernels ---------------------------------------------------------------------- */
/* Element i of a tensor of any float type, as float; and the store back. */
static inline float kn_cpu_ld(const void *p, kiln_dtype t, int64_t i) {
    switch (t) {
    case KILN_F32: return ((const float *)p)[i];
    case KILN_F16: return kn_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BF16: return kn_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return (float)kn_load_f64(p, t, i);
    }
}
static inline void kn_cpu_st(void *p, kiln_dtype t, int64_t i, float v) {
    switch (t) {
    case KILN_F32: ((float *)p)[i] = v; break;
    case KILN_F16: ((uint16_t *)p)[i] = kn_f32_to_f16(v); break;
    case KILN_BF16: ((uint16_t *)p)[i] = kn_f32_to_bf16(v); break;
    default: kn_store_f64(p, t, i, v); break;
    }
}

/* Strides (in elements) of out's dims for an input broadcast into out (0 on broadcast dims). */
void kn_cpu_broadcast_strides(const kn_tensor *in, const kn_tensor *out, int64_t *strides);

/* Applies a fused epilogue activation (kn_act, with alpha/beta) to one value. */
float kn_cpu_act(int act, float x, float alpha, float beta);

/* Scratch memory for a step, made in prepare (never while running). */
typedef struct kn_cpu_scratch {
    size_t bytes;
    void *data;
} kn_cpu_scratch;
kiln_status kn_cpu_scratch_new(size_t bytes, void **state);
void kn_cpu_scratch_free(void *state);

#endif
