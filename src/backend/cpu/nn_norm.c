/* CPU BatchNormalization (inference), InstanceNormalization and LayerNormalization. Statistics
 * are accumulated in double (two passes: mean, then the variance around it). */
#include "nn_kernels.h"

#include <math.h>

/* ---- BatchNormalization: y = (x - mean) / sqrt(var + eps) * scale + B per channel ---------------- */

static kiln_status kn_cpu_batchnorm(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *sc = &a->in[1], *bb = &a->in[2], *mu = &a->in[3], *var = &a->in[4];
    const kn_tensor *y = &a->out[0];
    double eps = kn_attr_f(a->node, "epsilon", 1e-5f);
    int64_t N = x->dims[0], C = x->dims[1], sp = 1;
    for (int i = 2; i < x->rank; i++) sp *= x->dims[i];
    for (int64_t c = 0; c < C; c++) {
        double k = kn_nn_ld(sc->data, sc->dtype, c) / sqrt(kn_nn_ld(var->data, var->dtype, c) + eps);
        double b = kn_nn_ld(bb->data, bb->dtype, c) - kn_nn_ld(mu->data, mu->dtype, c) * k;
        for (int64_t n = 0; n < N; n++) {
            int64_t base = (n * C + c) * sp;
            if (x->dtype == KILN_F32) {
                const float *xs = (const float *)x->data + base;
                float *ys = (float *)y->data + base, kf = (float)k, bf = (float)b;
                for (int64_t i = 0; i < sp; i++) ys[i] = xs[i] * kf + bf;
            } else {
                for (int64_t i = 0; i < sp; i++)
                    kn_nn_st(y->data, y->dtype, base + i, kn_nn_ld(x->data, x->dtype, base + i) * k + b);
            }
        }
    }
    return KILN_OK;
}

/* ---- InstanceNormalization: per (n, c), normalize over the spatial dims ----------------------------- */

static kiln_status kn_cpu_instancenorm(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *sc = &a->in[1], *bb = &a->in[2], *y = &a->out[0];
    double eps = kn_attr_f(a->node, "epsilon", 1e-5f);
    int64_t N = x->dims[0], C = x->dims[1], sp = 1;
    for (int i = 2; i < x->rank; i++) sp *= x->dims[i];
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            int64_t base = (n * C + c) * sp;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < sp; i++) mean += kn_nn_ld(x->data, x->dtype, base + i);
            mean = sp ? mean / (double)sp : 0.0;
            for (int64_t i = 0; i < sp; i++) {
                double d = kn_nn_ld(x->data, x->dtype, base + i) - mean;
                var += d * d;
            }
            var = sp ? var / (double)sp : 0.0;
            double k = kn_nn_ld(sc->data, sc->dtype, c) / sqrt(var + eps);
            double b = kn_nn_ld(bb->data, bb->dtype, c) - mean * k;
            for (int64_t i = 0; i < sp; i++)
                kn_nn_st(y->data, y->dtype, base + i, kn_nn_ld(x->data, x->dtype, base + i) * k + b);
        }
    return KILN_OK;
}

/* ---- LayerNormalization: per row of X.shape[:axis], normalize over X.shape[axis:] ------------------- */

typedef struct kn_ln_plan {
    int axis, nr;                    /* normalized dims: X.dims[axis:], nr of them */
    int64_t outer, inner;
    int64_t ndims[KILN_MAX_RANK];
    int64_t ss[KILN_MAX_RANK], bs[KILN_MAX_RANK]; /* Scale and B strides over the normalized dims */
    double eps;
    double *scale, *bias; /* expanded to `inner` values, in scratch */
    void *mem;
} kn_ln_plan;

static void kn_ln_release(void *state) {
    kn_ln_plan *p = state;
    if (!p) return;
    kn_aligned_free(p->mem);
    kn_free(p);
}

static kiln_status kn_ln_prepare(const kn_kernel_args *a, void **state) {
    const kn_tensor *x = &a->in[0];
    *state = NULL;
    int axis;
    KN_TRY(kn_norm_axis(a->node, kn_attr_i(a->node, "axis", -1), x->rank, &axis));
    kn_ln_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning a LayerNormalization");
    p->axis = axis;
    p->nr = x->rank - axis;
    p->eps = kn_attr_f(a->node, "epsilon", 1e-5f);
    p->outer = p->inner = 1;
    for (int i = 0; i < x->rank; i++) {
        if (i < axis) p->outer *= x->dims[i];
        else p->inner *= (p->ndims[i - axis] = x->dims[i]);
    }
    kn_tensor norm = {.dtype = x->dtype, .rank = p->nr};
    memcpy(norm.dims, p->ndims, sizeof norm.dims);
    kn_cpu_broadcast_strides(&a->in[1], &norm, p->ss);
    if (a->n_in > 2 && kn_tensor_present(&a->in[2])) kn_cpu_broadcast_strides(&a->in[2], &norm, p->bs);
    size_t bytes = (size_t)(p->inner ? p->inner : 1) * sizeof(double);
    p->mem = kn_aligned_alloc(2 * bytes);
    if (!p->mem) {
        kn_ln_release(p);
        return kn_node_error(a->node, KILN_ERR_OUT_OF_MEMORY, "out of host memory for %zu bytes of scratch", 2 * bytes);
    }
    p->scale = p->mem;
    p->bias = (double *)((char *)p->mem + bytes);
    *state = p;
    return KILN_OK;
}

static kiln_status kn_cpu_layernorm(const kn_kernel_args *a) {
    const kn_ln_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the LayerNormalization kernel ran without its prepare step");
    const kn_tensor *x = &a->in[0], *sc = &a->in[1], *y = &a->out[0];
    const kn_tensor *bb = a->n_in > 2 && kn_tensor_present(&a->in[2]) ? &a->in[2] : NULL;
    /* the fused form: X + input 3 is normalized */
    const kn_tensor *res = a->n_in > 3 && kn_tensor_present(&a->in[3]) ? &a->in[3] : NULL;
    const kn_tensor *mean_t = a->n_out > 1 && a->out[1].data ? &a->out[1] : NULL;
    const kn_tensor *inv_t = a->n_out > 2 && a->out[2].data ? &a->out[2] : NULL;
    /* Scale and B broadcast over the normalized dims, once per run */
    int64_t idx[KILN_MAX_RANK] = {0}, os = 0, ob = 0;
    for (int64_t j = 0; j < p->inner; j++) {
        p->scale[j] = kn_nn_ld(sc->data, sc->dtype, os);
        p->bias[j] = bb ? kn_nn_ld(bb->data, bb->dtype, ob) : 0.0;
        kn_nn_odometer(p->nr, p->ndims, idx, p->ss, &os, bb ? p->bs : NULL, &ob);
    }
    for (int64_t r = 0; r < p->outer; r++) {
        int64_t base = r * p->inner;
        double mean = 0, var = 0;
#define KN_LN_X(i) (kn_nn_ld(x->data, x->dtype, (i)) + (res ? kn_nn_ld(res->data, res->dtype, (i)) : 0.0))
        for (int64_t j = 0; j < p->inner; j++) mean += KN_LN_X(base + j);
        mean = p->inner ? mean / (double)p->inner : 0.0;
        for (int64_t j = 0; j < p->inner; j++) {
            double d = KN_LN_X(base + j) - mean;
            var += d * d;
        }
        var = p->inner ? var / (double)p->inner : 0.0;
        double inv = 1.0 / sqrt(var + p->eps);
        for (int64_t j = 0; j < p->inner; j++) {
            double v = (KN_LN_X(base + j) - mean) * inv;
            kn_nn_st(y->data, y->dtype, base + j, v * p->scale[j] + p->bias[j]);
        }
        if (mean_t) kn_nn_st(mean_t->data, mean_t->dtype, r, mean);
        if (inv_t) kn_nn_st(inv_t->data, inv_t->dtype, r, inv);
    }
#undef KN_LN_X
    return KILN_OK;
}

void kn_cpu_register_nn_norm(kn_kernel *t) {
    t[KN_OP_BatchNormalization] = (kn_kernel){.name = "cpu.batchnorm", .run = kn_cpu_batchnorm};
    t[KN_OP_InstanceNormalization] = (kn_kernel){.name = "cpu.instancenorm", .run = kn_cpu_instancenorm};
    t[KN_OP_LayerNormalization] = (kn_kernel){.name = "cpu.layernorm", .run = kn_cpu_layernorm,
                                              .prepare = kn_ln_prepare, .release = kn_ln_release};
}
