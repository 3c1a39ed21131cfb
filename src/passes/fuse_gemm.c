/* Gemm/MatMul epilogue fusion, as one step: MatMul + Add(constant bias) -> MatMul with the bias
 * as its 3rd input (broadcast-added to the product); Gemm + Add(constant) -> the bias folded into
 * C (beta becomes 1); then an activation (Relu, GELU in its Gelu-op and erf forms, the others the
 * activation matcher knows) -> "kiln.act". The kernel computes act(A x B + bias). The same
 * legality rules as every fusion: one reader, no graph-output name, no forced fallback, and the
 * backend's engine must take the fused node. */
#include "passes.h"

/* c's dims broadcast into y's without growing it (y's static dims, right-aligned). */
static int kn_bias_fits(const kn_host_tensor *c, const kn_value *y) {
    if (y->rank < 0 || c->rank > y->rank) return 0;
    for (int i = 0; i < c->rank; i++) {
        kn_dim d = y->dims[y->rank - c->rank + i];
        if (c->dims[i] == 1) continue;
        if (d.sym >= 0 || d.v != c->dims[i]) return 0;
    }
    return 1;
}

static kiln_status kn_gemm_fuse_bias(kn_graph *g, const kn_pass_options *opt, int i, int add, int *done) {
    *done = 0;
    kn_node *mm = &g->nodes[i];
    int y = mm->out[0];
    const kn_node *an = &g->nodes[add];
    int c = an->in[0] == y ? an->in[1] : an->in[0];
    const kn_host_tensor *ct = kn_pass_const(g, c);
    const kn_value *yv = &g->values[y];
    if (c == y || !ct || !kn_dtype_is_float(yv->dtype) || ct->dtype != yv->dtype || !kn_bias_fits(ct, yv)) return KILN_OK;
    int bias = c; /* the value that becomes the 3rd input */
    int made = -1;
    if (mm->n_in > 2 && mm->in[2] >= 0) {
        if (mm->op == KN_OP_MatMul) return KILN_OK; /* already has a bias: a second Add stays */
        const kn_host_tensor *c0 = kn_pass_const(g, mm->in[2]);
        if (!c0) return KILN_OK;
        kn_host_tensor *sum;
        kiln_status st = kn_pass_broadcast_axpby(c0, kn_attr_f(mm, "beta", 1.0f), ct, 1.0, yv->dtype, &sum);
        if (st == KILN_ERR_OUT_OF_MEMORY) return st;
        if (st != KILN_OK) { kn_clear_error(); return KILN_OK; }
        if (!kn_bias_fits(sum, yv)) { kn_host_tensor_free(sum); return KILN_OK; }
        char name[256];
        snprintf(name, sizeof name, "%s.bias", mm->name);
        KN_TRY(kn_pass_add_const(g, name, sum, &made));
        bias = made;
    }
    kn_node_backup bk;
    KN_TRY(kn_node_backup_save(mm, &bk));
    kiln_status st = kn_pass_set_input(mm, 2, bias);
    if (st == KILN_OK && mm->op == KN_OP_Gemm) st = kn_node_set_attr_float(mm, "beta", 1.0f);
    if (st != KILN_OK || !kn_pass_backend_takes(opt, g, i)) {
        kn_node_backup_restore(mm, &bk);
        if (made >= 0) kn_pass_drop_const(g, made);
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

kiln_status kn_pass_fuse_gemm(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    int bias[2] = {0, 0}, merged = 0, acts[2][KN_ACT_COUNT];
    memset(acts, 0, sizeof acts);
    kiln_status st = KILN_OK;
    for (int k = 0; k < n && st == KILN_OK; k++) {
        int i = order[k];
        const kn_node *nd = &g->nodes[i];
        if (nd->dead || nd->fallback || (nd->op != KN_OP_Gemm && nd->op != KN_OP_MatMul) || nd->n_out < 1) continue;
        int which = nd->op == KN_OP_MatMul;
        for (int step = 0; step < 8 && st == KILN_OK; step++) {
            nd = &g->nodes[i];
            int y = nd->out[0], done = 0;
            if (y < 0) break;
            if (kn_attr_i(nd, "kiln.act", KN_ACT_NONE) != KN_ACT_NONE) {
                st = kn_pass_fuse_second_act(g, opt, i, &done);
                merged += done;
                if (done) continue;
                break;
            }
            int c = kn_pass_sole_consumer(g, y);
            if (step == 0 && c >= 0 && !g->nodes[c].fallback && g->nodes[c].op == KN_OP_Add && g->nodes[c].n_in == 2) {
                st = kn_gemm_fuse_bias(g, opt, i, c, &done);
                if (done) { bias[which]++; continue; }
            }
            kn_act_match m;
            if (st == KILN_OK && kn_pass_match_act(g, y, &m)) {
                st = kn_pass_fuse_activation(g, opt, i, &m, &done);
                if (done) { acts[which][m.act]++; continue; }
            }
            break;
        }
    }
    kn_free(order);
    KN_TRY(st);
    static const char *const what[2] = {"Gemm", "MatMul"};
    int total = bias[0] + bias[1] + merged;
    if (merged) kn_pass_log(opt, "fuse_gemm: merged %d clip-like activation into a Gemm/MatMul epilogue", merged);
    for (int w = 0; w < 2; w++) {
        if (bias[w]) kn_pass_log(opt, "fuse_gemm: fused %d bias Add into %s", bias[w], what[w]);
        for (int a = 1; a < KN_ACT_COUNT; a++)
            if (acts[w][a]) {
                kn_pass_log(opt, "fuse_gemm: fused %d %s activation into %s", acts[w][a], kn_act_name(a), what[w]);
                total += acts[w][a];
            }
    }
    *changed = total;
    return KILN_OK;
}
