/* Conv epilogue fusion: Conv followed by
 *   - Add of a constant that broadcasts over the channels ((C,1,1), (1,C,1,1), a scalar) -> folded
 *     into the Conv's bias B;
 *   - Add of another tensor of the output's shape (a residual) -> the Conv's 4th input;
 *   - an activation (Relu, Clip, Sigmoid, HardSwish, LeakyRelu, Gelu, x*sigmoid(x), erf GELU)
 *     -> "kiln.act" with its alpha/beta.
 * in that order: the kernel computes act(conv(x) + B + residual). Each step needs the Conv's
 * output to have no other reader and no graph-output name, and no node involved forced to fall
 * back; a step the backend's engine does not take is undone. */
#include "passes.h"

typedef struct kn_conv_stats {
    int bias, residual, merged, act[KN_ACT_COUNT];
} kn_conv_stats;

/* The bias constant of Add(y, c) when c broadcasts over the channel dim of y (rank r) only. */
static int kn_conv_bias_const(const kn_graph *g, int c, int y, int64_t m) {
    const kn_host_tensor *t = kn_pass_const(g, c);
    const kn_value *yv = &g->values[y];
    if (!t || !kn_dtype_is_float(t->dtype) || yv->rank < 2 || t->rank > yv->rank) return 0;
    if (yv->dtype != t->dtype) return 0;
    for (int i = 0; i < t->rank; i++) {
        int axis = yv->rank - t->rank + i;
        int64_t d = t->dims[i];
        if (d == 1) continue;
        if (axis != 1 || d != m) return 0;
    }
    return 1;
}

/* Conv node i: fold Add(y, bias) into B. */
static kiln_status kn_conv_fuse_bias(kn_graph *g, const kn_pass_options *opt, int i, int add, int *done) {
    *done = 0;
    kn_node *cv = &g->nodes[i];
    int y = cv->out[0];
    const kn_node *an = &g->nodes[add];
    int c = an->in[0] == y ? an->in[1] : an->in[0];
    const kn_value *wv = &g->values[cv->in[1]];
    int64_t m = wv->rank >= 1 && wv->dims[0].sym < 0 ? wv->dims[0].v : -1;
    kiln_dtype dt = g->values[y].dtype;
    if (m < 0 || c == y || !kn_dtype_is_float(dt) || !kn_conv_bias_const(g, c, y, m)) return KILN_OK;
    const kn_host_tensor *bt = kn_pass_const(g, c);
    const kn_host_tensor *b0 = cv->n_in > 2 && cv->in[2] >= 0 ? kn_pass_const(g, cv->in[2]) : NULL;
    if (cv->n_in > 2 && cv->in[2] >= 0 && !b0) return KILN_OK; /* a bias computed at run time */
    int64_t dims[1] = {m};
    kn_host_tensor *nb = kn_host_tensor_new(dt, 1, dims);
    if (!nb) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory fusing a bias");
    int64_t bn = kn_host_numel(bt);
    for (int64_t k = 0; k < m; k++) {
        double v = kn_load_f64(bt->data, bt->dtype, bn == 1 ? 0 : k);
        if (b0) v += kn_load_f64(b0->data, b0->dtype, kn_host_numel(b0) == 1 ? 0 : k);
        kn_store_f64(nb->data, dt, k, v);
    }
    char name[256];
    snprintf(name, sizeof name, "%s.bias", cv->name);
    int bv;
    KN_TRY(kn_pass_add_const(g, name, nb, &bv));
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(cv, &bk));
    kiln_status st = kn_pass_set_input(cv, 2, bv);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, i)) {
        kn_node_backup_restore(cv, &bk);
        kn_pass_drop_const(g, bv);
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, i, add));
    int out = g->nodes[add].out[0];
    kn_pass_kill(g, add);
    kn_pass_take_output(g, i, 0, out);
    *done = 1;
    return KILN_OK;
}

/* Conv node i: Add(y, r) with r of y's shape becomes the residual input. */
static kiln_status kn_conv_fuse_residual(kn_graph *g, const kn_pass_options *opt, int i, int add, int *done) {
    *done = 0;
    kn_node *cv = &g->nodes[i];
    int y = cv->out[0];
    const kn_node *an = &g->nodes[add];
    int r = an->in[0] == y ? an->in[1] : an->in[0];
    if (r < 0 || r == y || (cv->n_in > 3 && cv->in[3] >= 0)) return KILN_OK;
    const kn_value *yv = &g->values[y], *rv = &g->values[r], *ov = &g->values[an->out[0]];
    if (!kn_pass_same_shape(yv, rv) || !kn_pass_same_shape(yv, ov)) return KILN_OK;
    if (yv->dtype == KILN_DTYPE_INVALID || yv->dtype != rv->dtype) return KILN_OK;
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(cv, &bk));
    kiln_status st = KILN_OK;
    if (cv->n_in < 3) st = kn_pass_set_input(cv, 2, -1);
    if (st == KILN_OK) st = kn_pass_set_input(cv, 3, r);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, i)) {
        kn_node_backup_restore(cv, &bk);
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, i, add));
    int out = g->nodes[add].out[0];
    kn_pass_kill(g, add);
    kn_pass_take_output(g, i, 0, out);
    *done = 1;
    return KILN_OK;
}

static kiln_status kn_fuse_conv_node(kn_graph *g, const kn_pass_options *opt, int i, kn_conv_stats *stats) {
    for (int step = 0; step < 8; step++) {
        kn_node *cv = &g->nodes[i];
        int done = 0;
        if (cv->n_out < 1 || cv->out[0] < 0) return KILN_OK;
        if (kn_attr_i(cv, "kiln.act", KN_ACT_NONE) != KN_ACT_NONE) {
            KN_TRY(kn_pass_fuse_second_act(g, opt, i, &done));
            if (!done) return KILN_OK;
            stats->merged++;
            continue;
        }
        int y = cv->out[0];
        int c = kn_pass_sole_consumer(g, y);
        if (c >= 0 && !g->nodes[c].fallback && g->nodes[c].op == KN_OP_Add && g->nodes[c].n_in == 2) {
            KN_TRY(kn_conv_fuse_bias(g, opt, i, c, &done));
            if (done) { stats->bias++; continue; }
            KN_TRY(kn_conv_fuse_residual(g, opt, i, c, &done));
            if (done) { stats->residual++; continue; }
        }
        kn_act_match m;
        if (kn_pass_match_act(g, y, &m)) {
            KN_TRY(kn_pass_fuse_activation(g, opt, i, &m, &done));
            if (done) { stats->act[m.act]++; continue; }
        }
        return KILN_OK;
    }
    return KILN_OK;
}

kiln_status kn_pass_fuse_conv(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    kn_conv_stats stats;
    memset(&stats, 0, sizeof stats);
    kiln_status st = KILN_OK;
    for (int k = 0; k < n && st == KILN_OK; k++) {
        const kn_node *nd = &g->nodes[order[k]];
        if (nd->dead || nd->fallback || nd->op != KN_OP_Conv || nd->n_in < 2) continue;
        st = kn_fuse_conv_node(g, opt, order[k], &stats);
    }
    kn_free(order);
    KN_TRY(st);
    int acts = 0;
    for (int a = 0; a < KN_ACT_COUNT; a++) acts += stats.act[a];
    if (stats.bias) kn_pass_log(opt, "fuse_conv: folded %d constant Add into the Conv bias", stats.bias);
    if (stats.merged) kn_pass_log(opt, "fuse_conv: merged %d clip-like activation into a Conv's epilogue", stats.merged);
    if (stats.residual) kn_pass_log(opt, "fuse_conv: fused %d residual Add into Conv", stats.residual);
    for (int a = 1; a < KN_ACT_COUNT; a++)
        if (stats.act[a]) kn_pass_log(opt, "fuse_conv: fused %d %s activation into Conv", stats.act[a], kn_act_name(a));
    *changed = stats.bias + stats.residual + stats.merged + acts;
    return KILN_OK;
}
