/* MatMul operand fusion: a MatMul absorbs what the attention blocks of exported transformers put
 * around it, so that no step runs for them:
 * - a Transpose of an input that only swaps its last two dims (perm [0, .., r-3, r-1, r-2]) ->
 *   "kiln.trans_a" / "kiln.trans_b" = 1 (the MatMul reads the un-transposed tensor; two
 *   transposes in a row cancel);
 * - a Mul by a scalar constant (one element, rank no larger than the other operand's, so the Mul
 *   keeps its shape), or a Div of the operand by one, on either input or on the output -> the
 *   factor joins "kiln.alpha" (a float, the product of every absorbed scale). The output form
 *   needs a MatMul without bias or activation yet (this pass runs before fuse_gemm, which may add
 *   them afterwards: the kernels compute act(alpha * op(A) op(B) + bias)).
 * The same legality rules as every fusion: the absorbed node's output has the MatMul as its only
 * reader and is not a graph output, no node involved is marked fallback, and the backend's
 * engine must take the fused node (else the rewrite is undone). */
#include "passes.h"

#include <math.h>

static const char *const kn_trans_attr[2] = {"kiln.trans_a", "kiln.trans_b"};

/* Transpose node t swaps the last two dims of its input (rank known, >= 2) and keeps the others. */
static int kn_swaps_last_two(const kn_graph *g, const kn_node *t) {
    if (t->n_in < 1 || t->in[0] < 0) return 0;
    int r = g->values[t->in[0]].rank;
    if (r < 2) return 0;
    const int64_t *perm;
    int c = kn_attr_ints(t, "perm", &perm);
    if (c == 0) return r == 2; /* no perm: all dims reversed */
    if (c != r) return 0;
    for (int i = 0; i < r; i++) {
        int64_t want = i == r - 2 ? r - 1 : i == r - 1 ? r - 2 : i;
        if (perm[i] != want && perm[i] != want - r) return 0;
    }
    return 1;
}

/* Node s scales value v by a scalar constant: Mul(v, c), Mul(c, v) or Div(v, c), with c's rank no
 * larger than v's (so the result has v's shape). On a match, *factor is the multiplier. */
static int kn_scales(const kn_graph *g, const kn_node *s, int v, double *factor) {
    if (s->dead || s->fallback || s->n_in != 2 || s->n_out < 1 || (s->op != KN_OP_Mul && s->op != KN_OP_Div)) return 0;
    int other;
    if (s->in[0] == v) other = s->in[1];
    else if (s->op == KN_OP_Mul && s->in[1] == v) other = s->in[0];
    else return 0;
    const kn_value *vv = &g->values[v], *out = &g->values[s->out[0]];
    const kn_host_tensor *c = kn_pass_const(g, other);
    double f;
    if (other == v || !c || vv->rank < 0 || c->rank > vv->rank || !kn_dtype_is_float(vv->dtype) ||
        out->dtype != vv->dtype || !kn_pass_const_scalar(g, other, &f))
        return 0;
    if (s->op == KN_OP_Div) {
        if (f == 0.0) return 0;
        f = 1.0 / f;
    }
    if (!isfinite(f)) return 0;
    *factor = f;
    return 1;
}

typedef struct kn_mm_counts {
    int trans, scale_in, scale_out;
} kn_mm_counts;

/* Tries one rewrite on input `slot` of MatMul i: a last-two-dims Transpose or a scalar scale that
 * feeds only this MatMul. */
static kiln_status kn_mm_absorb_input(kn_graph *g, const kn_pass_options *opt, int i, int slot, kn_mm_counts *cnt,
                                      int *done) {
    *done = 0;
    kn_node *mm = &g->nodes[i];
    int v = mm->in[slot];
    int p = kn_pass_producer(g, v);
    if (p < 0 || kn_pass_sole_consumer(g, v) != i) return KILN_OK;
    const kn_node *pn = &g->nodes[p];
    if (pn->fallback || pn->n_in < 1) return KILN_OK;
    int is_trans = pn->op == KN_OP_Transpose && kn_swaps_last_two(g, pn);
    double f = 1.0;
    int scale_slot = -1;
    if (!is_trans) {
        for (int k = 0; k < pn->n_in && k < 2 && scale_slot < 0; k++)
            if (pn->in[k] >= 0 && kn_scales(g, pn, pn->in[k], &f)) scale_slot = k;
        if (scale_slot < 0) return KILN_OK;
    }
    int x = is_trans ? pn->in[0] : pn->in[scale_slot];
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(mm, &bk));
    kiln_status st = kn_pass_set_input(mm, slot, x);
    if (st == KILN_OK && is_trans)
        st = kn_node_set_attr_int(mm, kn_trans_attr[slot], !kn_attr_i(mm, kn_trans_attr[slot], 0));
    if (st == KILN_OK && !is_trans)
        st = kn_node_set_attr_float(mm, "kiln.alpha", (float)(kn_attr_f(mm, "kiln.alpha", 1.0f) * f));
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, i)) {
        kn_node_backup_restore(mm, &bk);
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, i, p));
    kn_pass_kill(g, p);
    if (is_trans) cnt->trans++;
    else cnt->scale_in++;
    *done = 1;
    return KILN_OK;
}

/* The MatMul's only reader scales its output by a scalar constant: the MatMul takes that over. */
static kiln_status kn_mm_absorb_output(kn_graph *g, const kn_pass_options *opt, int i, kn_mm_counts *cnt, int *done) {
    *done = 0;
    kn_node *mm = &g->nodes[i];
    if ((mm->n_in > 2 && mm->in[2] >= 0) || kn_attr_i(mm, "kiln.act", KN_ACT_NONE) != KN_ACT_NONE) return KILN_OK;
    int y = mm->out[0];
    int s = kn_pass_sole_consumer(g, y);
    double f;
    if (s < 0 || !kn_scales(g, &g->nodes[s], y, &f)) return KILN_OK;
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(mm, &bk));
    kiln_status st = kn_node_set_attr_float(mm, "kiln.alpha", (float)(kn_attr_f(mm, "kiln.alpha", 1.0f) * f));
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, i)) {
        kn_node_backup_restore(mm, &bk);
        return st;
    }
    kn_node_backup_free(&bk);
    KN_TRY(kn_pass_absorb(g, i, s));
    int out = g->nodes[s].out[0];
    kn_pass_kill(g, s);
    kn_pass_take_output(g, i, 0, out);
    cnt->scale_out++;
    *done = 1;
    return KILN_OK;
}

kiln_status kn_pass_fuse_matmul(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    kn_mm_counts cnt = {0, 0, 0};
    kiln_status st = KILN_OK;
    for (int k = 0; k < n && st == KILN_OK; k++) {
        int i = order[k];
        const kn_node *nd = &g->nodes[i];
        if (nd->dead || nd->fallback || nd->op != KN_OP_MatMul || nd->n_in < 2 || nd->n_out < 1) continue;
        for (int slot = 0; slot < 2 && st == KILN_OK; slot++)
            for (int step = 0; step < 8 && st == KILN_OK; step++) {
                int done = 0;
                st = kn_mm_absorb_input(g, opt, i, slot, &cnt, &done);
                if (!done) break;
            }
        for (int step = 0; step < 8 && st == KILN_OK; step++) {
            int done = 0;
            st = kn_mm_absorb_output(g, opt, i, &cnt, &done);
            if (!done) break;
        }
    }
    kn_free(order);
    KN_TRY(st);
    if (cnt.trans) kn_pass_log(opt, "fuse_matmul: fused %d Transpose into MatMul (kiln.trans_a/b)", cnt.trans);
    if (cnt.scale_in || cnt.scale_out)
        kn_pass_log(opt, "fuse_matmul: fused %d scalar Mul/Div into MatMul (kiln.alpha): %d on inputs, %d on outputs",
                    cnt.scale_in + cnt.scale_out, cnt.scale_in, cnt.scale_out);
    *changed = cnt.trans + cnt.scale_in + cnt.scale_out;
    return KILN_OK;
}
