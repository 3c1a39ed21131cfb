/* Dead-code elimination: nodes none of whose outputs is read by a live node or named as a graph
 * output are removed, in reverse topological order so that whole dead chains go in one sweep.
 * Constants that nothing reads any more (weights replaced by folding) are released. */
#include "passes.h"

kiln_status kn_pass_dce(kn_graph *g, const kn_pass_options *opt, int *changed) {
    *changed = 0;
    int *order, n;
    KN_TRY(kn_graph_topo_order(g, &order, &n));
    int *uses;
    kiln_status st = kn_graph_use_counts(g, &uses);
    if (st != KILN_OK) {
        kn_free(order);
        return st;
    }
    int removed = 0, released = 0;
    for (int k = n - 1; k >= 0; k--) {
        kn_node *nd = &g->nodes[order[k]];
        int live = 0;
        for (int o = 0; o < nd->n_out && !live; o++) live = nd->out[o] >= 0 && uses[nd->out[o]] > 0;
        if (live) continue;
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] >= 0) uses[nd->in[i]]--;
        kn_pass_kill(g, order[k]);
        removed++;
    }
    for (int v = 0; v < g->n_values; v++) {
        kn_value *val = &g->values[v];
        if (val->constant && uses[v] == 0 && !(val->flags & (KN_VALUE_INPUT | KN_VALUE_OUTPUT))) {
            kn_host_tensor_free(val->constant);
            val->constant = NULL;
            released++;
        }
    }
    kn_free(order);
    kn_free(uses);
    if (removed) kn_pass_log(opt, "dce: removed %d unused node%s", removed, removed == 1 ? "" : "s");
    if (released) kn_pass_log(opt, "dce: released %d unused constant%s", released, released == 1 ? "" : "s");
    *changed = removed;
    return KILN_OK;
}
