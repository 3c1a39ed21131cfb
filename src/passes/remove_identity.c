/* Removes Identity and inference-mode Dropout: their consumers read the input directly. When the
 * output is a graph output, the input's producer writes the output value instead, so the graph's
 * output keeps its name; an Identity that copies a graph input or a constant to an output stays, and
 * so does one with kiln.to_layout (the layout pass's NCHW <-> NHWC conversion, a physical transpose). */
#include "passes.h"

/* Dropout is the identity at inference unless its mask output is used or training_mode is a
 * constant true (left in place so that shape inference reports it). */
static int kn_removable(const kn_graph *g, const kn_node *n) {
    if (n->dead || n->fallback || n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) return 0;
    if (n->op == KN_OP_Identity) return !kn_node_attr(n, "kiln.to_layout"); /* a layout change stays */
    if (n->op != KN_OP_Dropout) return 0;
    if (n->n_out > 1 && n->out[1] >= 0 && kn_pass_uses(g, n->out[1]) > 0) return 0;
    if (n->n_in > 2 && n->in[2] >= 0) {
        const kn_host_tensor *t = kn_pass_const(g, n->in[2]);
        if (!t || kn_host_numel(t) != 1 || kn_load_f64(t->data, t->dtype, 0) != 0) return 0;
    }
    return 1;
}

kiln_status kn_pass_remove_identity(kn_graph *g, const kn_pass_options *opt, int *changed) {
    int removed[2] = {0, 0};
    for (int i = 0; i < g->n_nodes; i++) {
        kn_node *n = &g->nodes[i];
        if (!kn_removable(g, n)) continue;
        int x = n->in[0], y = n->out[0];
        if (x == y) continue;
        if (!kn_pass_is_output(g, y)) {
            kn_pass_kill(g, i);
            kn_graph_replace_uses(g, y, x);
        } else {
            /* y names a graph output: x's producer writes y, and x's other readers read y */
            int p = kn_pass_producer(g, x);
            const kn_value *xv = &g->values[x];
            if (p < 0 || xv->constant || (xv->flags & KN_VALUE_INPUT) || kn_pass_is_output(g, x)) continue;
            if (g->values[y].dtype != KILN_DTYPE_INVALID && xv->dtype != KILN_DTYPE_INVALID && g->values[y].dtype != xv->dtype)
                continue;
            kn_pass_kill(g, i);
            int slot = 0;
            while (g->nodes[p].out[slot] != x) slot++;
            kn_pass_take_output(g, p, slot, y);
            kn_graph_replace_uses(g, x, y);
        }
        removed[n->op == KN_OP_Dropout]++;
    }
    if (removed[0]) kn_pass_log(opt, "remove_identity: removed %d Identity", removed[0]);
    if (removed[1]) kn_pass_log(opt, "remove_identity: removed %d inference Dropout", removed[1]);
    *changed = removed[0] + removed[1];
    return KILN_OK;
}
