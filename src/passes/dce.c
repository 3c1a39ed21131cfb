/* Dead-code elimination: nodes none of whose outputs is read by a live node or named as a graph
 * output are removed, in reverse topological order so that whole dead chains go in one sweep.
 * (Constants the passes leave unread are released by the pipeline, src/passes/pipeline.c.) */
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
    int removed = 0;
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
    kn_free(order);
    kn_free(uses);
    if (removed) kn_pass_log(opt, "dce: removed %d unused node%s", removed, removed == 1 ? "" : "s");
    *changed = removed;
    return KILN_OK;
}
