/* CPU MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool and
 * GlobalMaxPool: direct loops over the window, accumulated in double. */
#include "nn_kernels.h"

#include <math.h>

/* A pool planned for one shape; spatial dims normalized to three as in nn_conv.c. */
typedef struct kn_pool_plan {
    int64_t NC;
    int64_t in[3], out[3], k[3], s[3], d[3], p[3], pe[3];
    int64_t isp, osp;
    int include_pad;
    int col_major; /* MaxPool storage_order=1: Indices count the spatial dims column major */
} kn_pool_plan;

static kiln_status kn_pool_prepare(const kn_kernel_args *a, void **state) {
    const kn_node *n = a->node;
    const kn_tensor *x = &a->in[0];
    *state = NULL;
    int nsp = x->rank - 2;
    const int64_t *ks;
    if (kn_attr_ints(n, "kernel_shape", &ks) != nsp)
        return kn_node_error(n, KILN_ERR_SHAPE, "attribute 'kernel_shape' does not match the %d spatial dims of X", nsp);
    kn_window win;
    KN_TRY(kn_nn_window(n, nsp, x->dims + 2, ks, (int)kn_attr_i(n, "ceil_mode", 0), &win));
    kn_pool_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning a pool");
    p->NC = x->dims[0] * x->dims[1];
    p->include_pad = (int)kn_attr_i(n, "count_include_pad", 0);
    p->col_major = (int)kn_attr_i(n, "storage_order", 0) == 1;
    p->isp = p->osp = 1;
    for (int i = 0; i < 3; i++) {
        int j = i - (3 - nsp);
        if (j < 0) {
            p->in[i] = p->out[i] = p->k[i] = p->s[i] = p->d[i] = 1;
        } else {
            p->in[i] = win.in[j];
            p->out[i] = win.out[j];
            p->k[i] = win.k[j];
            p->s[i] = win.stride[j];
            p->d[i] = win.dil[j];
            p->p[i] = win.pad_begin[j];
            p->pe[i] = win.pad_end[j];
        }
        p->isp *= p->in[i];
        p->osp *= p->out[i];
    }
    *state = p;
    return KILN_OK;
}

static void kn_pool_release(void *state) { kn_free(state); }

/* The smallest value of a MaxPool type: what a window that sees only padding yields. */
static double kn_pool_lowest(kiln_dtype t) {
    return t == KILN_U8 ? 0.0 : t == KILN_I8 ? -128.0 : -INFINITY;
}

static kiln_status kn_cpu_maxpool(const kn_kernel_args *a) {
    const kn_pool_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the MaxPool kernel ran without its prepare step");
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    const kn_tensor *ind = a->n_out > 1 && kn_tensor_present(&a->out[1]) && a->out[1].data ? &a->out[1] : NULL;
    const int64_t *I = p->in, *O = p->out;
    double lowest = kn_pool_lowest(x->dtype);
    for (int64_t nc = 0; nc < p->NC; nc++) {
        int64_t xb = nc * p->isp, yb = nc * p->osp;
        for (int64_t od = 0; od < O[0]; od++)
            for (int64_t oh = 0; oh < O[1]; oh++)
                for (int64_t ow = 0; ow < O[2]; ow++) {
                    double best = lowest;
                    int64_t at = -1;
                    for (int64_t kd = 0; kd < p->k[0]; kd++) {
                        int64_t zd = od * p->s[0] - p->p[0] + kd * p->d[0];
                        if (zd < 0 || zd >= I[0]) continue;
                        for (int64_t kh = 0; kh < p->k[1]; kh++) {
                            int64_t zh = oh * p->s[1] - p->p[1] + kh * p->d[1];
                            if (zh < 0 || zh >= I[1]) continue;
                            for (int64_t kw = 0; kw < p->k[2]; kw++) {
                                int64_t zw = ow * p->s[2] - p->p[2] + kw * p->d[2];
                                if (zw < 0 || zw >= I[2]) continue;
                                int64_t xi = xb + (zd * I[1] + zh) * I[2] + zw;
                                double v = kn_nn_ld(x->data, x->dtype, xi);
                                if (at < 0 || v > best || (isnan(v) && !isnan(best))) {
                                    best = v;
                                    at = p->col_major ? xb + (zw * I[1] + zh) * I[0] + zd : xi;
                                }
                            }
                        }
                    }
                    int64_t yi = yb + (od * O[1] + oh) * O[2] + ow;
                    kn_nn_st(y->data, y->dtype, yi, best);
                    if (ind) ((int64_t *)ind->data)[yi] = at < 0 ? 0 : at;
                }
    }
    return KILN_OK;
}

/* The taps of one window along one dim: those inside the input and those inside the padded
 * input (what count_include_pad counts). */
static void kn_pool_taps(const kn_pool_plan *p, int dim, int64_t o, int64_t *valid, int64_t *padded) {
    int64_t v = 0, q = 0;
    for (int64_t k = 0; k < p->k[dim]; k++) {
        int64_t z = o * p->s[dim] - p->p[dim] + k * p->d[dim];
        v += z >= 0 && z < p->in[dim];
        q += z >= -p->p[dim] && z < p->in[dim] + p->pe[dim];
    }
    *valid = v;
    *padded = q;
}

static kiln_status kn_cpu_avgpool(const kn_kernel_args *a) {
    const kn_pool_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the AveragePool kernel ran without its prepare step");
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    const int64_t *I = p->in, *O = p->out;
    for (int64_t nc = 0; nc < p->NC; nc++) {
        int64_t xb = nc * p->isp, yb = nc * p->osp;
        for (int64_t od = 0; od < O[0]; od++) {
            int64_t vd, qd;
            kn_pool_taps(p, 0, od, &vd, &qd);
            for (int64_t oh = 0; oh < O[1]; oh++) {
                int64_t vh, qh;
                kn_pool_taps(p, 1, oh, &vh, &qh);
                for (int64_t ow = 0; ow < O[2]; ow++) {
                    int64_t vw, qw;
                    kn_pool_taps(p, 2, ow, &vw, &qw);
                    double sum = 0;
                    for (int64_t kd = 0; kd < p->k[0]; kd++) {
                        int64_t zd = od * p->s[0] - p->p[0] + kd * p->d[0];
                        if (zd < 0 || zd >= I[0]) continue;
                        for (int64_t kh = 0; kh < p->k[1]; kh++) {
                            int64_t zh = oh * p->s[1] - p->p[1] + kh * p->d[1];
                            if (zh < 0 || zh >= I[1]) continue;
                            for (int64_t kw = 0; kw < p->k[2]; kw++) {
                                int64_t zw = ow * p->s[2] - p->p[2] + kw * p->d[2];
                                if (zw < 0 || zw >= I[2]) continue;
                                sum += kn_nn_ld(x->data, x->dtype, xb + (zd * I[1] + zh) * I[2] + zw);
                            }
                        }
                    }
                    int64_t count = p->include_pad ? qd * qh * qw : vd * vh * vw;
                    kn_nn_st(y->data, y->dtype, yb + (od * O[1] + oh) * O[2] + ow, count ? sum / (double)count : 0.0);
                }
            }
        }
    }
    return KILN_OK;
}

static kiln_status kn_cpu_global_pool(const kn_kernel_args *a) {
    const kn_tensor *x = &a->in[0], *y = &a->out[0];
    int64_t nc = x->dims[0] * x->dims[1], sp = 1;
    for (int i = 2; i < x->rank; i++) sp *= x->dims[i];
    int is_max = a->node->op == KN_OP_GlobalMaxPool;
    for (int64_t c = 0; c < nc; c++) {
        double acc = is_max ? -INFINITY : 0.0;
        for (int64_t i = 0; i < sp; i++) {
            double v = kn_nn_ld(x->data, x->dtype, c * sp + i);
            if (!is_max) acc += v;
            else if (v > acc || isnan(v)) acc = v;
            if (is_max && isnan(acc)) break;
        }
        kn_nn_st(y->data, y->dtype, c, is_max ? acc : sp ? acc / (double)sp : 0.0);
    }
    return KILN_OK;
}

void kn_cpu_register_nn_pool(kn_kernel *t) {
    t[KN_OP_MaxPool] = (kn_kernel){.name = "cpu.maxpool", .run = kn_cpu_maxpool, .prepare = kn_pool_prepare,
                                   .release = kn_pool_release};
    t[KN_OP_AveragePool] = (kn_kernel){.name = "cpu.avgpool", .run = kn_cpu_avgpool, .prepare = kn_pool_prepare,
                                       .release = kn_pool_release};
    t[KN_OP_GlobalAveragePool] = (kn_kernel){.name = "cpu.global_avgpool", .run = kn_cpu_global_pool};
    t[KN_OP_GlobalMaxPool] = (kn_kernel){.name = "cpu.global_maxpool", .run = kn_cpu_global_pool};
}
