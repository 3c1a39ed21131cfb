/* Residual Add -> LayerNormalization fusion: LayerNormalization(Add(a, b), Scale, B) becomes
 * LayerNormalization(a, Scale, B, b) with attribute "kiln.residual" = 1; the kernel normalizes
 * a + b (in its accumulation type) and nothing writes the sum. This is the post-norm transformer
 * block, x = norm(x + sublayer(x)). Only when a and b have one static shape (no broadcasting; a
 * symbol fixed by the profile counts as its value) and the same element type, the Add's only
 * reader is the LayerNormalization's X (a sum that is read again later, as in pre-norm blocks,
 * stays), and the usual rules hold: no graph-output sum, no node marked fallback, and the
 * backend's engine takes the fused node. */
#include "passes.h"

/* A dim's constant value: a constant, or a symbol whose range is one value (a fixed profile); -1 else. */
static int64_t kn_dim_const(const kn_graph *g, kn_dim d) {
    if (d.sym < 0) return d.v;
    const kn_symbol *s = &g->syms[d.sym];
    return s->min == s->max ? s->min : -1;
}

/* a and b have one shape: each dim the same symbol or the same known value. */
static int kn_ln_same_shape(const kn_graph *g, const kn_value *a, const kn_value *b) {
    if (a->rank < 0 || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++) {
        kn_dim x = a->dims[i], y = b->dims[i];
        if (x.sym >= 0 && x.sym == y.sym) continue;
        int64_t cx = kn_dim_const(g, x);
        if (cx < 0 || cx != kn_dim_const(g, y)) return 0;
    }
    return 1;
}

static kiln_status kn_ln_fuse_residual(kn_graph *g, const kn_pass_options *opt, int i, int *done) {
    *done = 0;
    kn_node *ln = &g->nodes[i];
    if (ln->n_in < 2 || (ln->n_in > 3 && ln->in[3] >= 0) || kn_attr_i(ln, "kiln.residual", 0)) return KILN_OK;
    int x = ln->in[0];
    int add = kn_pass_producer(g, x);
    if (add < 0 || kn_pass_sole_consumer(g, x) != i) return KILN_OK;
    const kn_node *an = &g->nodes[add];
    if (an->fallback || an->op != KN_OP_Add || an->n_in != 2 || an->in[0] < 0 || an->in[1] < 0) return KILN_OK;
    int a = an->in[0], b = an->in[1];
    const kn_value *va = &g->values[a], *vb = &g->values[b], *vx = &g->values[x];
    if (!kn_ln_same_shape(g, va, vb) || !kn_ln_same_shape(g, va, vx) || va->dtype != vb->dtype ||
        va->dtype != vx->dtype || !kn_dtype_is_float(va->dtype))
        return KILN_OK;
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(ln, &bk));
    kiln_status st = kn_pass_set_input(ln, 0, a);
    if (st == KILN_OK) st = kn_pass_set_input(ln, 3, b);
    if (st == KILN_OK) st = kn_node_set_attr_int(ln, "kiln.residual", 1);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, i)) {
        kn_node_backup_restore(ln, &bk);
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, i, add));
    kn_pass_kill(g, add);
    *done = 1;
    return KILN_OK;
}

kiln_status kn_pass_fuse_norm(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int fused = 0;
    kiln_status st = KILN_OK;
    for (int i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        const kn_node *n = &g->nodes[i];
        if (n->dead || n->fallback || n->op != KN_OP_LayerNormalization) continue;
        int done = 0;
        st = kn_ln_fuse_residual(g, opt, i, &done);
        fused += done;
    }
    KN_TRY(st);
    if (fused) kn_pass_log(opt, "fuse_norm: fused %d residual Add into LayerNormalization (kiln.residual)", fused);
    *changed = fused;
    return KILN_OK;
}
