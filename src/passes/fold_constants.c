/* Constant folding: a node whose inputs are all constants is evaluated once on the host with the
 * CPU reference kernels and replaced by its result. Shape of a value whose dims are all static
 * becomes a constant too, so the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains that
 * exporters write collapse when the shapes are static (the graph's static dims come from
 * kn_graph_infer_static). Chains that depend on symbolic dims stay; the runtime evaluates them on
 * the host at shape time.
 *
 * A fold that would turn a small input into a large constant (Expand, Tile, ConstantOfShape) is
 * skipped: it would trade a cheap op for weights. A node the CPU cannot evaluate, or whose shape
 * function rejects its inputs, is left for the later stages to report. */
#include "passes.h"

#include "ir/shape_infer.h"

/* Folding may grow constants up to this size beyond their inputs' size. */
#define KN_FOLD_MAX_GROWTH (1u << 20)

static int kn_shape_bound(int64_t v, int rank) {
    if (v < 0) v += rank;
    return v < 0 ? 0 : v > rank ? rank : (int)v;
}

/* Shape(x) of a value with static dims; start/end as in ONNX Shape-15. */
static kiln_status kn_fold_shape(kn_graph *g, int i, int *folded) {
    kn_node *n = &g->nodes[i];
    const kn_value *x = &g->values[n->in[0]];
    if (!kn_pass_static_shape(x) || n->out[0] < 0) return KILN_OK;
    int s = kn_shape_bound(kn_attr_i(n, "start", 0), x->rank);
    int e = kn_shape_bound(kn_attr_i(n, "end", x->rank), x->rank);
    int64_t len = e > s ? e - s : 0;
    kn_host_tensor *t = kn_host_tensor_new(KILN_I64, 1, &len);
    if (!t) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory folding constants");
    for (int k = s; k < e; k++) ((int64_t *)t->data)[k - s] = x->dims[k].v;
    int y = n->out[0];
    kn_pass_kill(g, i);
    kn_value_set_constant(&g->values[y], t);
    (*folded)++;
    return KILN_OK;
}

static kiln_status kn_fold_node(kn_graph *g, int i, int *folded) {
    kn_node *n = &g->nodes[i];
    if (n->dead || n->fallback || n->n_out < 1 || n->n_out > 8 || n->n_in > 64) return KILN_OK;
    if (n->n_in == 0 && n->op != KN_OP_Constant) return KILN_OK;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !g->values[n->in[k]].constant)
            return n->op == KN_OP_Shape && k == 0 ? kn_fold_shape(g, i, folded) : KILN_OK;
    const kn_op_def *d = kn_op_get(n->op);
    if (!d || !d->infer) return KILN_OK;
    kn_tensor ins[64], outs[8];
    size_t in_bytes = 0;
    for (int k = 0; k < n->n_in; k++) {
        memset(&ins[k], 0, sizeof ins[k]);
        if (n->in[k] < 0) continue;
        const kn_host_tensor *t = g->values[n->in[k]].constant;
        ins[k].dtype = t->dtype;
        ins[k].rank = t->rank;
        memcpy(ins[k].dims, t->dims, sizeof ins[k].dims);
        ins[k].host = t->data;
        ins[k].data = t->data;
        in_bytes += kn_tensor_bytes(&ins[k]);
    }
    memset(outs, 0, sizeof outs);
    kn_infer_ctx ctx = {.g = g, .node = n, .n_in = n->n_in, .n_out = n->n_out, .in = ins, .out = outs};
    kiln_status st = d->infer(&ctx);
    if (st == KILN_ERR_OUT_OF_MEMORY) return st;
    if (st != KILN_OK) { /* the shape stage reports it with the profile's context */
        kn_clear_error();
        return KILN_OK;
    }
    size_t out_bytes = 0;
    for (int o = 0; o < n->n_out; o++) {
        if (outs[o].rank < 0 || outs[o].rank > KILN_MAX_RANK || !kiln_dtype_size(outs[o].dtype)) return KILN_OK;
        for (int k = 0; k < outs[o].rank; k++)
            if (outs[o].dims[k] < 0) return KILN_OK;
        out_bytes += kn_tensor_bytes(&outs[o]);
    }
    if (out_bytes > in_bytes + KN_FOLD_MAX_GROWTH) return KILN_OK;
    kn_host_tensor *res[8] = {0};
    for (int o = 0; o < n->n_out; o++) {
        res[o] = kn_host_tensor_new(outs[o].dtype, outs[o].rank, outs[o].dims);
        if (!res[o]) {
            for (int q = 0; q < o; q++) kn_host_tensor_free(res[q]);
            return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory folding constants");
        }
        outs[o].data = res[o]->data;
    }
    st = kn_cpu_eval_node(n, ins, n->n_in, outs, n->n_out);
    if (st != KILN_OK) {
        for (int o = 0; o < n->n_out; o++) kn_host_tensor_free(res[o]);
        if (st == KILN_ERR_OUT_OF_MEMORY) return st;
        kn_clear_error();
        return KILN_OK;
    }
    kn_pass_kill(g, i);
    for (int o = 0; o < n->n_out; o++) {
        if (n->out[o] >= 0) kn_value_set_constant(&g->values[n->out[o]], res[o]);
        else kn_host_tensor_free(res[o]);
    }
    (*folded)++;
    return KILN_OK;
}

kiln_status kn_pass_fold_constants(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    int folded = 0, shapes = 0;
    kiln_status st = KILN_OK;
    for (int k = 0; k < n && st == KILN_OK; k++) {
        int before = folded;
        st = kn_fold_node(g, order[k], &folded);
        shapes += folded > before && g->nodes[order[k]].op == KN_OP_Shape;
    }
    kn_free(order);
    KN_TRY(st);
    if (folded)
        kn_pass_log(opt, "fold_constants: folded %d node%s into constants", folded, folded == 1 ? "" : "s");
    if (shapes)
        kn_pass_log(opt, "fold_constants: %d of them Shape of a value with static dims", shapes);
    *changed = folded;
    return KILN_OK;
}
