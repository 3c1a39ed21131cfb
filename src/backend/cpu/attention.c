/* CPU KilnAttention (src/ops/attention.h): per batch entry and query row, the scores in double,
 * their softmax, and the weighted sum of V's rows; operands read through their strided views. */
#include "cpu.h"
#include "nn_kernels.h"
#include "ops/attention.h"

#include <math.h>

typedef struct kn_attn_plan {
    kn_attn_geom g;
    double *scores; /* Lk */
    double *acc;    /* Dv */
} kn_attn_plan;

static void kn_attn_release(void *state) {
    kn_attn_plan *p = state;
    if (!p) return;
    kn_free(p->scores);
    kn_free(p);
}

static kiln_status kn_attn_prepare(const kn_kernel_args *a, void **state) {
    *state = NULL;
    kn_attn_plan *p = kn_calloc(1, sizeof *p);
    if (!p) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory planning a KilnAttention");
    kiln_status st = kn_attn_geometry(a->node, &a->in[0], &a->in[1], &a->in[2], &p->g);
    if (st != KILN_OK) {
        kn_free(p);
        return st;
    }
    size_t n = (size_t)(p->g.lk + p->g.dv + 1);
    p->scores = kn_malloc(n * sizeof(double));
    if (!p->scores) {
        kn_free(p);
        return kn_node_error(a->node, KILN_ERR_OUT_OF_MEMORY, "out of host memory for %zu bytes of scratch", n * sizeof(double));
    }
    p->acc = p->scores + p->g.lk;
    *state = p;
    return KILN_OK;
}

static int64_t kn_attn_at(const kn_attn_operand *o, int64_t n, int64_t l, int64_t j) {
    return o->off + (n / o->n_inner) * o->s_outer + (n % o->n_inner) * o->s_inner + l * o->s_l + j * o->s_d;
}

static kiln_status kn_cpu_attention(const kn_kernel_args *a) {
    const kn_attn_plan *p = a->state;
    if (!p) return kn_node_error(a->node, KILN_ERR_INTERNAL, "the KilnAttention kernel ran without its prepare step");
    const kn_attn_geom *g = &p->g;
    const kn_tensor *q = &a->in[0], *k = &a->in[1], *v = &a->in[2], *y = &a->out[0];
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t l = 0; l < g->lq; l++) {
            double m = -INFINITY;
            for (int64_t t = 0; t < g->lk; t++) {
                double s = 0;
                for (int64_t j = 0; j < g->dk; j++)
                    s += kn_nn_ld(q->data, q->dtype, kn_attn_at(&g->q, n, l, j)) *
                         kn_nn_ld(k->data, k->dtype, kn_attn_at(&g->k, n, t, j));
                s *= g->alpha;
                p->scores[t] = s;
                m = s > m || isnan(s) ? s : m;
            }
            double sum = 0;
            for (int64_t t = 0; t < g->lk; t++) sum += (p->scores[t] = exp(p->scores[t] - m));
            for (int64_t j = 0; j < g->dv; j++) p->acc[j] = 0;
            for (int64_t t = 0; t < g->lk; t++) {
                double w = p->scores[t] / sum;
                for (int64_t j = 0; j < g->dv; j++) p->acc[j] += w * kn_nn_ld(v->data, v->dtype, kn_attn_at(&g->v, n, t, j));
            }
            for (int64_t j = 0; j < g->dv; j++) kn_nn_st(y->data, y->dtype, kn_attn_at(&g->y, n, l, j), p->acc[j]);
        }
    return KILN_OK;
}

void kn_cpu_register_attention(kn_kernel *t) {
    t[KN_OP_KilnAttention] = (kn_kernel){.name = "cpu.attention", .run = kn_cpu_attention, .prepare = kn_attn_prepare,
                                         .release = kn_attn_release};
}
