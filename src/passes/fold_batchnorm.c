/* BatchNormalization folded into the Conv, Gemm or MatMul (constant weights) that feeds it:
 * with s = scale / sqrt(var + eps) per output channel,
 *   W' = W * s            (Conv: along dim 0; Gemm/MatMul: along the output-column dim)
 *   b' = (b - mean) * s + B
 * The producer's output must have no other reader and no name as a graph output, and neither
 * node may be forced to fall back. Folded weights are new constants (the old ones may be shared);
 * DCE releases the old ones when nothing reads them. */
#include "passes.h"

#include <math.h>

typedef struct kn_bn_coef {
    int64_t c;
    double *s, *t; /* y = x * s + t */
} kn_bn_coef;

static int kn_float_const(const kn_graph *g, int v, int64_t numel) {
    const kn_host_tensor *t = kn_pass_const(g, v);
    return t && kn_dtype_is_float(t->dtype) && (numel < 0 || kn_host_numel(t) == numel);
}

/* s and t of a BatchNormalization whose parameters are constants. */
static kiln_status kn_bn_coefs(const kn_graph *g, const kn_node *bn, kn_bn_coef *c, int *ok) {
    *ok = 0;
    memset(c, 0, sizeof *c);
    if (bn->n_in < 5 || !kn_float_const(g, bn->in[1], -1)) return KILN_OK;
    int64_t ch = kn_host_numel(g->values[bn->in[1]].constant);
    for (int k = 2; k < 5; k++)
        if (!kn_float_const(g, bn->in[k], ch)) return KILN_OK;
    c->c = ch;
    c->s = kn_malloc((size_t)(ch ? ch : 1) * sizeof(double));
    c->t = kn_malloc((size_t)(ch ? ch : 1) * sizeof(double));
    if (!c->s || !c->t) {
        kn_free(c->s); kn_free(c->t);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory folding BatchNormalization");
    }
    double eps = kn_attr_f(bn, "epsilon", 1e-5f);
    const kn_host_tensor *sc = g->values[bn->in[1]].constant, *b = g->values[bn->in[2]].constant;
    const kn_host_tensor *mu = g->values[bn->in[3]].constant, *var = g->values[bn->in[4]].constant;
    for (int64_t i = 0; i < ch; i++) {
        double s = kn_load_f64(sc->data, sc->dtype, i) / sqrt(kn_load_f64(var->data, var->dtype, i) + eps);
        c->s[i] = s;
        c->t[i] = kn_load_f64(b->data, b->dtype, i) - kn_load_f64(mu->data, mu->dtype, i) * s;
    }
    *ok = 1;
    return KILN_OK;
}

/* W scaled by s[j] where j is the index along `axis` (the output channel). */
static kn_host_tensor *kn_scale_along(const kn_host_tensor *w, int axis, const double *s) {
    kn_host_tensor *o = kn_host_tensor_new(w->dtype, w->rank, w->dims);
    if (!o) return NULL;
    int64_t inner = 1;
    for (int d = axis + 1; d < w->rank; d++) inner *= w->dims[d];
    int64_t n = kn_host_numel(w), len = w->dims[axis];
    for (int64_t i = 0; i < n; i++)
        kn_store_f64(o->data, o->dtype, i, kn_load_f64(w->data, w->dtype, i) * s[(i / inner) % len]);
    return o;
}

/* b' = b * s + t over c channels (b may be NULL: zero; a one-element b broadcasts). */
static kn_host_tensor *kn_fold_bias(const kn_host_tensor *b, double beta, const kn_bn_coef *c, kiln_dtype dt) {
    int64_t dims[1] = {c->c};
    kn_host_tensor *o = kn_host_tensor_new(dt, 1, dims);
    if (!o) return NULL;
    for (int64_t i = 0; i < c->c; i++) {
        double bv = b ? beta * kn_load_f64(b->data, b->dtype, kn_host_numel(b) == 1 ? 0 : i) : 0.0;
        kn_store_f64(o->data, dt, i, bv * c->s[i] + c->t[i]);
    }
    return o;
}

/* A bias that broadcasts over the channel axis only: one element, or c elements along the last
 * dim with every other dim 1. */
static int kn_channel_bias(const kn_host_tensor *b, int64_t c) {
    int64_t n = kn_host_numel(b);
    if (n == 1) return 1;
    if (n != c || b->rank < 1 || b->dims[b->rank - 1] != c) return 0;
    return 1;
}

/* Builds the folded weights and bias for producer p of kind Conv/Gemm/MatMul; returns 0 when
 * the producer's form is not one this pass folds. */
static kiln_status kn_bn_folded_weights(const kn_graph *g, const kn_node *p, const kn_bn_coef *c,
                                        kn_host_tensor **w_out, kn_host_tensor **b_out, int *bias_slot, int *ok) {
    *ok = 0;
    *w_out = *b_out = NULL;
    const kn_host_tensor *w = kn_pass_const(g, p->in[1]);
    if (!w || !kn_dtype_is_float(w->dtype)) return KILN_OK;
    const kn_host_tensor *b = p->n_in > 2 && p->in[2] >= 0 ? kn_pass_const(g, p->in[2]) : NULL;
    if (p->n_in > 2 && p->in[2] >= 0 && (!b || !kn_dtype_is_float(b->dtype))) return KILN_OK;
    int axis;
    double beta = 1.0;
    switch (p->op) {
    case KN_OP_Conv:
        if (w->rank < 3 || w->dims[0] != c->c || (p->n_in > 3 && p->in[3] >= 0)) return KILN_OK;
        if (b && kn_host_numel(b) != c->c) return KILN_OK;
        axis = 0;
        break;
    case KN_OP_Gemm:
        if (w->rank != 2) return KILN_OK;
        axis = kn_attr_i(p, "transB", 0) ? 0 : 1;
        beta = kn_attr_f(p, "beta", 1.0f);
        if (w->dims[axis] != c->c || (b && !kn_channel_bias(b, c->c))) return KILN_OK;
        break;
    case KN_OP_MatMul: {
        const kn_value *a = &g->values[p->in[0]];
        if (w->rank != 2 || w->dims[1] != c->c || a->rank != 2) return KILN_OK; /* channels = last dim */
        if (b && !kn_channel_bias(b, c->c)) return KILN_OK;
        axis = 1;
        break;
    }
    default: return KILN_OK;
    }
    *w_out = kn_scale_along(w, axis, c->s);
    *b_out = kn_fold_bias(b, beta, c, w->dtype);
    if (!*w_out || !*b_out) {
        kn_host_tensor_free(*w_out);
        kn_host_tensor_free(*b_out);
        *w_out = *b_out = NULL;
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory folding BatchNormalization");
    }
    *bias_slot = 2;
    *ok = 1;
    return KILN_OK;
}

/* Folds BatchNormalization node i into its producer when legal; *done tells whether it did. */
static kiln_status kn_fold_one(kn_graph *g, const kn_pass_options *opt, int i, int *done, kn_op *into) {
    *done = 0;
    kn_node *bn = &g->nodes[i];
    if (bn->dead || bn->fallback || bn->n_in < 5 || bn->out[0] < 0) return KILN_OK;
    for (int o = 1; o < bn->n_out; o++)
        if (bn->out[o] >= 0 && kn_pass_uses(g, bn->out[o]) > 0) return KILN_OK;
    int x = bn->in[0];
    int p = kn_pass_producer(g, x);
    if (p < 0 || g->nodes[p].fallback || kn_pass_sole_consumer(g, x) != i) return KILN_OK;
    kn_node *pn = &g->nodes[p];
    if (pn->op != KN_OP_Conv && pn->op != KN_OP_Gemm && pn->op != KN_OP_MatMul) return KILN_OK;
    if (pn->n_in < 2 || pn->out[0] != x || kn_attr_i(pn, "kiln.act", KN_ACT_NONE) != KN_ACT_NONE) return KILN_OK;
    kn_bn_coef c;
    int ok;
    KN_TRY(kn_bn_coefs(g, bn, &c, &ok));
    if (!ok) return KILN_OK;
    kn_host_tensor *w = NULL, *b = NULL;
    int bias_slot = 2;
    kiln_status st = kn_bn_folded_weights(g, pn, &c, &w, &b, &bias_slot, &ok);
    kn_free(c.s);
    kn_free(c.t);
    if (st != KILN_OK || !ok) return st;
    char name[256];
    int wv, bv;
    snprintf(name, sizeof name, "%s.bn_weight", pn->name);
    st = kn_pass_add_const(g, name, w, &wv);
    if (st != KILN_OK) { kn_host_tensor_free(b); return st; }
    snprintf(name, sizeof name, "%s.bn_bias", pn->name);
    KN_TRY(kn_pass_add_const(g, name, b, &bv));
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(pn, &bk));
    st = kn_pass_set_input(pn, 1, wv);
    if (st == KILN_OK) st = kn_pass_set_input(pn, bias_slot, bv);
    if (st == KILN_OK && pn->op == KN_OP_Gemm) st = kn_node_set_attr_float(pn, "beta", 1.0f);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, p)) {
        kn_node_backup_restore(pn, &bk);
        kn_pass_drop_const(g, wv);
        kn_pass_drop_const(g, bv);
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, p, i));
    int y = bn->out[0];
    kn_pass_kill(g, i);
    kn_pass_take_output(g, p, 0, y);
    *into = pn->op;
    *done = 1;
    return KILN_OK;
}

kiln_status kn_pass_fold_batchnorm(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int counts[3] = {0, 0, 0}; /* into Conv, Gemm, MatMul */
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op != KN_OP_BatchNormalization) continue;
        int done;
        kn_op into = KN_OP_INVALID;
        KN_TRY(kn_fold_one(g, opt, i, &done, &into));
        if (!done) continue;
        counts[into == KN_OP_Conv ? 0 : into == KN_OP_Gemm ? 1 : 2]++;
    }
    static const char *const what[3] = {"Conv", "Gemm", "MatMul"};
    for (int k = 0; k < 3; k++)
        if (counts[k])
            kn_pass_log(opt, "fold_batchnorm: folded %d BatchNormalization into %s", counts[k], what[k]);
    *changed = counts[0] + counts[1] + counts[2];
    return KILN_OK;
}
